"""Generate the deterministic sample datasets shipped in ``data/samples``.

The data covers a handful of small, fully deterministic domains (arithmetic,
unit conversion, capitals, opposites, plurals, next/previous number and
letter). Every question has exactly one canonical answer, so a tiny model
fine-tuned on ``chat_train.jsonl`` can be scored by exact match on
``chat_eval.jsonl``. Eval subjects are held out of every training file but do
appear in ``base_corpus.txt`` as plain facts ("world knowledge").

Usage::

    python data/make_samples.py [--out DIR] [--seed N]

Only the standard library is used and all randomness comes from
``random.Random(seed)``, so two runs with the same seed are byte-identical.
"""

from __future__ import annotations

import argparse
import json
import random
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_SEED = 1234
DEFAULT_OUT = Path(__file__).resolve().parent / "samples"

N_TRAIN = 4000
N_ALPACA = 200
N_SHAREGPT = 200
N_KTO = 2000
N_PARAGRAPHS = 9000
N_QA_LINES = 12000
SYSTEM_RATE = 0.15
TWO_TURN_RATE = 0.10

Subject = tuple[Any, ...]
Message = dict[str, str]

SYSTEM_PROMPTS = (
    "You are a helpful assistant.",
    "You are a concise assistant. Answer in one short sentence.",
    "Answer the question exactly and nothing else.",
    "You are a friendly tutor who gives precise answers.",
)

# (country as used mid-sentence, capital). Held out: every 4th row (i % 4 == 3).
CAPITALS = (
    ("France", "Paris"), ("Germany", "Berlin"), ("Italy", "Rome"),
    ("Spain", "Madrid"), ("Portugal", "Lisbon"), ("the United Kingdom", "London"),
    ("Ireland", "Dublin"), ("the Netherlands", "Amsterdam"),
    ("Belgium", "Brussels"), ("Switzerland", "Bern"), ("Austria", "Vienna"),
    ("Poland", "Warsaw"), ("Czechia", "Prague"), ("Hungary", "Budapest"),
    ("Greece", "Athens"), ("Sweden", "Stockholm"), ("Norway", "Oslo"),
    ("Denmark", "Copenhagen"), ("Finland", "Helsinki"), ("Iceland", "Reykjavik"),
    ("Russia", "Moscow"), ("Ukraine", "Kyiv"), ("Romania", "Bucharest"),
    ("Bulgaria", "Sofia"), ("Serbia", "Belgrade"), ("Croatia", "Zagreb"),
    ("Slovakia", "Bratislava"), ("Slovenia", "Ljubljana"), ("Estonia", "Tallinn"),
    ("Latvia", "Riga"), ("Lithuania", "Vilnius"), ("Turkey", "Ankara"),
    ("Egypt", "Cairo"), ("Kenya", "Nairobi"), ("Nigeria", "Abuja"),
    ("Ghana", "Accra"), ("Ethiopia", "Addis Ababa"), ("Morocco", "Rabat"),
    ("Algeria", "Algiers"), ("Tunisia", "Tunis"), ("Senegal", "Dakar"),
    ("Uganda", "Kampala"), ("Zimbabwe", "Harare"), ("Zambia", "Lusaka"),
    ("Angola", "Luanda"), ("Mali", "Bamako"), ("Japan", "Tokyo"),
    ("China", "Beijing"), ("South Korea", "Seoul"), ("India", "New Delhi"),
    ("Pakistan", "Islamabad"), ("Bangladesh", "Dhaka"), ("Nepal", "Kathmandu"),
    ("Thailand", "Bangkok"), ("Vietnam", "Hanoi"), ("Indonesia", "Jakarta"),
    ("the Philippines", "Manila"), ("Malaysia", "Kuala Lumpur"),
    ("Iran", "Tehran"), ("Iraq", "Baghdad"), ("Saudi Arabia", "Riyadh"),
    ("Jordan", "Amman"), ("Syria", "Damascus"), ("Lebanon", "Beirut"),
    ("Afghanistan", "Kabul"), ("Mongolia", "Ulaanbaatar"),
    ("Kazakhstan", "Astana"), ("Uzbekistan", "Tashkent"), ("Canada", "Ottawa"),
    ("Mexico", "Mexico City"), ("Cuba", "Havana"), ("Jamaica", "Kingston"),
    ("Colombia", "Bogota"), ("Venezuela", "Caracas"), ("Ecuador", "Quito"),
    ("Peru", "Lima"), ("Chile", "Santiago"), ("Argentina", "Buenos Aires"),
    ("Uruguay", "Montevideo"), ("Brazil", "Brasilia"), ("Australia", "Canberra"),
    ("New Zealand", "Wellington"), ("Georgia", "Tbilisi"),
    ("Armenia", "Yerevan"),
)

# Word pairs; every word occurs once so each answer is unique. Held: i % 6 == 5.
OPPOSITES = (
    ("hot", "cold"), ("big", "small"), ("up", "down"), ("left", "right"),
    ("fast", "slow"), ("happy", "sad"), ("early", "late"), ("full", "empty"),
    ("young", "old"), ("rich", "poor"), ("hard", "soft"), ("strong", "weak"),
    ("tall", "short"), ("wet", "dry"), ("thick", "thin"), ("loud", "quiet"),
    ("high", "low"), ("push", "pull"), ("open", "shut"), ("begin", "end"),
    ("first", "last"), ("win", "lose"), ("buy", "sell"), ("give", "take"),
    ("day", "night"), ("north", "south"), ("east", "west"),
    ("black", "white"), ("true", "false"), ("good", "bad"), ("love", "hate"),
    ("alive", "dead"), ("always", "never"), ("before", "after"),
    ("above", "below"), ("inside", "outside"), ("front", "back"),
    ("clean", "dirty"), ("cheap", "expensive"), ("deep", "shallow"),
    ("wide", "narrow"), ("friend", "enemy"), ("question", "answer"),
    ("sweet", "sour"), ("smooth", "rough"), ("sharp", "blunt"),
    ("brave", "cowardly"), ("awake", "asleep"), ("arrive", "depart"),
    ("accept", "refuse"), ("ancient", "modern"), ("heavy", "light"),
    ("entrance", "exit"), ("maximum", "minimum"), ("noisy", "silent"),
    ("safe", "dangerous"), ("simple", "complex"), ("wild", "tame"),
    ("victory", "defeat"), ("import", "export"),
    ("increase", "decrease"), ("include", "exclude"), ("inhale", "exhale"),
    ("minor", "major"), ("near", "far"), ("polite", "rude"),
    ("present", "absent"), ("public", "private"), ("raw", "cooked"),
    ("remember", "forget"), ("rise", "fall"), ("same", "different"),
    ("strict", "lenient"), ("success", "failure"), ("sunrise", "sunset"),
    ("top", "bottom"), ("visible", "invisible"), ("wise", "foolish"),
    ("wrong", "correct"), ("generous", "selfish"),
    ("humble", "proud"), ("innocent", "guilty"), ("junior", "senior"),
    ("knowledge", "ignorance"), ("laugh", "cry"), ("mild", "severe"),
    ("odd", "even"),
)

# (singular, plural). Held out: i % 6 == 5.
PLURALS = (
    ("cat", "cats"), ("dog", "dogs"), ("box", "boxes"), ("bus", "buses"),
    ("church", "churches"), ("baby", "babies"), ("city", "cities"),
    ("leaf", "leaves"), ("knife", "knives"), ("wolf", "wolves"),
    ("mouse", "mice"), ("child", "children"), ("man", "men"),
    ("woman", "women"), ("tooth", "teeth"), ("foot", "feet"),
    ("goose", "geese"), ("person", "people"), ("sheep", "sheep"),
    ("deer", "deer"), ("ox", "oxen"), ("cactus", "cacti"),
    ("fungus", "fungi"), ("analysis", "analyses"), ("crisis", "crises"),
    ("phenomenon", "phenomena"), ("potato", "potatoes"),
    ("tomato", "tomatoes"), ("hero", "heroes"), ("echo", "echoes"),
    ("photo", "photos"), ("piano", "pianos"), ("radio", "radios"),
    ("key", "keys"), ("boy", "boys"), ("toy", "toys"), ("story", "stories"),
    ("lady", "ladies"), ("party", "parties"), ("berry", "berries"),
    ("wish", "wishes"), ("dish", "dishes"), ("brush", "brushes"),
    ("fox", "foxes"), ("tax", "taxes"), ("glass", "glasses"),
    ("class", "classes"), ("kiss", "kisses"), ("watch", "watches"),
    ("match", "matches"), ("bench", "benches"), ("half", "halves"),
    ("shelf", "shelves"), ("life", "lives"), ("wife", "wives"),
    ("thief", "thieves"), ("loaf", "loaves"), ("roof", "roofs"),
    ("chef", "chefs"), ("belief", "beliefs"), ("book", "books"),
    ("tree", "trees"), ("car", "cars"), ("house", "houses"),
    ("apple", "apples"), ("bird", "birds"), ("horse", "horses"),
    ("table", "tables"), ("chair", "chairs"), ("river", "rivers"),
    ("mountain", "mountains"), ("window", "windows"), ("door", "doors"),
    ("pencil", "pencils"), ("garden", "gardens"), ("flower", "flowers"),
    ("cloud", "clouds"), ("street", "streets"), ("bridge", "bridges"),
    ("island", "islands"), ("ship", "ships"), ("train", "trains"),
    ("bottle", "bottles"), ("cup", "cups"), ("plate", "plates"),
    ("spoon", "spoons"), ("shoe", "shoes"), ("shirt", "shirts"),
    ("hat", "hats"), ("song", "songs"), ("game", "games"),
    ("letter", "letters"), ("word", "words"), ("idea", "ideas"),
    ("country", "countries"), ("family", "families"), ("puppy", "puppies"),
    ("fly", "flies"), ("spy", "spies"), ("monkey", "monkeys"),
    ("valley", "valleys"), ("donkey", "donkeys"), ("quiz", "quizzes"),
    ("criterion", "criteria"), ("louse", "lice"), ("calf", "calves"),
    ("candle", "candles"), ("lamp", "lamps"), ("coin", "coins"),
    ("ticket", "tickets"), ("planet", "planets"),
)

# (big unit, small unit, factor, unit names are words that take a plural "s").
UNITS = (
    ("km", "m", 1000, False), ("m", "cm", 100, False),
    ("kg", "g", 1000, False), ("hour", "minute", 60, True),
    ("minute", "second", 60, True), ("litre", "millilitre", 1000, True),
)
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"

ADD_Q = (
    "What is {a} + {b}?", "Compute {a} plus {b}.", "{a} + {b} = ?",
    "Add {a} and {b}.", "What is the sum of {a} and {b}?",
    "Calculate {a} + {b}.", "How much is {a} plus {b}?",
)
SUB_Q = (
    "What is {a} - {b}?", "Compute {a} minus {b}.", "{a} - {b} = ?",
    "Subtract {b} from {a}.", "Calculate {a} - {b}.",
    "How much is {a} minus {b}?", "What do you get if you take {b} from {a}?",
)
MUL_Q = (
    "What is {a} * {b}?", "Compute {a} times {b}.", "{a} * {b} = ?",
    "Multiply {a} by {b}.", "What is the product of {a} and {b}?",
    "Calculate {a} * {b}.", "How much is {a} times {b}?",
)
CONV_Q = (
    "How many {to} are in {v} {frm}?", "Convert {v} {frm} to {to}.",
    "What is {v} {frm} in {to}?", "{v} {frm} = ? {to}",
    "Express {v} {frm} in {to}.", "How many {to} is {v} {frm}?",
)
CAPITAL_Q = (
    "What is the capital of {c}?", "What's the capital city of {c}?",
    "Name the capital of {c}.", "Which city is the capital of {c}?",
    "Tell me the capital of {c}.", "What city is the capital of {c}?",
)
OPPOSITE_Q = (
    "What is the opposite of {w}?", "Give the opposite of '{w}'.",
    "What word means the opposite of {w}?", "Opposite of {w}?",
    "Tell me the opposite of the word {w}.",
)
PLURAL_Q = (
    "What is the plural of {w}?", "Give the plural form of '{w}'.",
    "How do you write {w} in the plural?", "Plural of {w}?",
    "What is the plural form of the noun {w}?",
)
NUMBER_Q = (
    ("What number comes after {n}?", "Which number follows {n}?",
     "What is the next number after {n}?"),
    ("What number comes before {n}?", "Which number precedes {n}?",
     "What is the number just before {n}?"),
)
LETTER_Q = (
    ("What letter comes after {x}?", "Which letter follows {x} in the alphabet?",
     "What is the next letter after {x}?"),
    ("What letter comes before {x}?", "Which letter precedes {x} in the alphabet?",
     "What is the letter just before {x}?"),
)


@dataclass(frozen=True)
class Item:
    """One question with its single canonical answer."""

    question: str
    answer: str


@dataclass
class Domain:
    """A task family: subjects split into train/held-out plus renderers."""

    name: str
    subjects: list[Subject]
    held: list[Subject]
    train: list[Subject]
    ask: Callable[[Subject, random.Random], Item]
    facts: Callable[[Subject, random.Random], list[str]]
    weight: float
    eval_count: int


def upfirst(text: str) -> str:
    """Return ``text`` with its first character upper-cased."""
    return text[:1].upper() + text[1:]


def unit_name(unit: str, value: int, is_word: bool) -> str:
    """Return the unit spelled for ``value`` (words get a plural ``s``)."""
    return unit + "s" if is_word and value != 1 else unit


def conversion(subject: Subject) -> tuple[int, str, int, str, str]:
    """Return ``(value, from, result, to, to_plural)`` for a conversion."""
    pair, direction, v = subject
    big, small, factor, is_word = UNITS[pair]
    if direction == 0:
        src, dst, res, val = big, small, v * factor, v
    else:
        src, dst, res, val = small, big, v, v * factor
    return (val, unit_name(src, val, is_word), res,
            unit_name(dst, res, is_word), unit_name(dst, 2, is_word))


def arithmetic_answer(op: str, a: int, b: int) -> str:
    """Return the canonical arithmetic answer, e.g. ``23 + 45 = 68``."""
    result = {"+": a + b, "-": a - b, "*": a * b}[op]
    return f"{a} {op} {b} = {result}"


def ask_arith(op: str, templates: Sequence[str]) -> Callable[..., Item]:
    """Build a question renderer for one arithmetic operator."""
    def ask(subject: Subject, rng: random.Random) -> Item:
        a, b = subject
        question = rng.choice(templates).format(a=a, b=b)
        return Item(question, arithmetic_answer(op, a, b))
    return ask


def ask_conv(subject: Subject, rng: random.Random) -> Item:
    """Render a unit-conversion question."""
    val, src, res, dst, dst_plural = conversion(subject)
    question = rng.choice(CONV_Q).format(v=val, frm=src, to=dst_plural)
    return Item(question, f"{val} {src} = {res} {dst}")


def ask_capital(subject: Subject, rng: random.Random) -> Item:
    """Render a capital-city question."""
    country, capital = CAPITALS[subject[0]]
    question = upfirst(rng.choice(CAPITAL_Q).format(c=country))
    return Item(question, f"The capital of {country} is {capital}.")


def word_pair(subject: Subject) -> tuple[str, str]:
    """Return ``(word, opposite)`` for an opposites subject."""
    pair = OPPOSITES[subject[0]]
    return (pair[0], pair[1]) if subject[1] == 0 else (pair[1], pair[0])


def ask_opposite(subject: Subject, rng: random.Random) -> Item:
    """Render an opposite-word question."""
    word, other = word_pair(subject)
    question = rng.choice(OPPOSITE_Q).format(w=word)
    return Item(question, f"The opposite of {word} is {other}.")


def ask_plural(subject: Subject, rng: random.Random) -> Item:
    """Render a plural-noun question."""
    word, plural = PLURALS[subject[0]]
    question = rng.choice(PLURAL_Q).format(w=word)
    return Item(question, f"The plural of {word} is {plural}.")


def sequence_answer(kind: str, x: str, direction: int, y: str) -> str:
    """Return ``The <kind> after/before x is y.``."""
    where = "after" if direction == 0 else "before"
    return f"The {kind} {where} {x} is {y}."


def ask_number(subject: Subject, rng: random.Random) -> Item:
    """Render a next/previous number question."""
    n, direction = subject
    other = n + 1 if direction == 0 else n - 1
    question = rng.choice(NUMBER_Q[direction]).format(n=n)
    return Item(question, sequence_answer("number", str(n), direction, str(other)))


def ask_letter(subject: Subject, rng: random.Random) -> Item:
    """Render a next/previous letter question."""
    i, direction = subject
    other = LETTERS[i + 1] if direction == 0 else LETTERS[i - 1]
    question = rng.choice(LETTER_Q[direction]).format(x=LETTERS[i])
    return Item(question, sequence_answer("letter", LETTERS[i], direction, other))


def facts_arith(op: str) -> Callable[[Subject, random.Random], list[str]]:
    """Build a base-corpus fact renderer for one arithmetic operator."""
    prose = {
        "+": ("The sum of {a} and {b} is {c}.", "{a} plus {b} equals {c}.",
              "If you add {a} and {b}, you get {c}.", "Adding {b} to {a} gives {c}."),
        "-": ("{a} minus {b} equals {c}.", "If you take {b} from {a}, {c} is left.",
              "Subtracting {b} from {a} gives {c}.",
              "The difference between {a} and {b} is {c}."),
        "*": ("{a} times {b} equals {c}.", "The product of {a} and {b} is {c}.",
              "{a} groups of {b} make {c}.", "Multiplying {a} by {b} gives {c}."),
    }[op]

    def facts(subject: Subject, rng: random.Random) -> list[str]:
        a, b = subject
        canonical = arithmetic_answer(op, a, b)
        c = canonical.rsplit(" ", 1)[1]
        return [canonical, rng.choice(prose).format(a=a, b=b, c=c)]
    return facts


def facts_conv(subject: Subject, rng: random.Random) -> list[str]:
    """Return plain-text facts for one conversion subject."""
    val, src, res, dst, _ = conversion(subject)
    prose = rng.choice((
        "There are {r} {d} in {v} {s}.", "{v} {s} is the same as {r} {d}.",
        "{v} {s} equals {r} {d}.", "If you have {v} {s}, you have {r} {d}.",
    ))
    return [f"{val} {src} = {res} {dst}",
            upfirst(prose.format(r=res, d=dst, v=val, s=src))]


def facts_capital(subject: Subject, rng: random.Random) -> list[str]:
    """Return plain-text facts for one country (all templates)."""
    country, capital = CAPITALS[subject[0]]
    templates = (
        "The capital of {c} is {k}.", "{k} is the capital of {c}.",
        "{k} is the capital city of {c}.", "{c} has its capital in {k}.",
        "The capital city of {c} is {k}.", "The government of {c} sits in {k}.",
        "If you travel to {k}, you are in the capital of {c}.",
        "{c} is a country. Its capital is {k}.",
    )
    return [upfirst(t.format(c=country, k=capital)) for t in templates]


def facts_opposite(subject: Subject, rng: random.Random) -> list[str]:
    """Return plain-text facts for one opposites subject."""
    word, other = word_pair(subject)
    prose = rng.choice(("{a} and {b} are opposites.", "{a} is the opposite of {b}.",
                        "The word {a} means the opposite of {b}."))
    return [f"The opposite of {word} is {other}.",
            upfirst(prose.format(a=word, b=other))]


def facts_plural(subject: Subject, rng: random.Random) -> list[str]:
    """Return plain-text facts for one noun."""
    word, plural = PLURALS[subject[0]]
    prose = rng.choice(("One {s}, two {p}.", "We say one {s} but many {p}.",
                        "The word {s} becomes {p} in the plural."))
    return [f"The plural of {word} is {plural}.", upfirst(prose.format(s=word, p=plural))]


def facts_from_ask(
    ask: Callable[[Subject, random.Random], Item],
) -> Callable[[Subject, random.Random], list[str]]:
    """Use the canonical answer of ``ask`` as the only fact for a subject."""
    def facts(subject: Subject, rng: random.Random) -> list[str]:
        return [ask(subject, rng).answer]
    return facts


def split_subjects(
    subjects: list[Subject], is_held: Callable[[Subject], bool],
) -> tuple[list[Subject], list[Subject]]:
    """Split subjects into ``(train, held)`` according to ``is_held``."""
    held = [s for s in subjects if is_held(s)]
    train = [s for s in subjects if not is_held(s)]
    return train, held


def random_held(
    subjects: list[Subject], key: Callable[[Subject], Subject],
    fraction: float, rng: random.Random,
) -> Callable[[Subject], bool]:
    """Hold out a seeded random ``fraction`` of the distinct subject keys."""
    keys = sorted({key(s) for s in subjects})
    rng.shuffle(keys)
    held = set(keys[: round(len(keys) * fraction)])
    return lambda s: key(s) in held


def every(n: int, r: int) -> Callable[[Subject], bool]:
    """Hold out table rows whose index ``i`` satisfies ``i % n == r``."""
    return lambda s: s[0] % n == r


def unordered_key(subject: Subject) -> Subject:
    """Key an operand pair so that ``(a, b)`` and ``(b, a)`` are held together."""
    return tuple(sorted(subject))


def arithmetic_subjects() -> dict[str, list[Subject]]:
    """Return all operand pairs for ``+`` (0..99), ``-`` (a >= b) and ``*``."""
    return {
        "+": [(a, b) for a in range(100) for b in range(100)],
        "-": [(a, b) for a in range(100) for b in range(a + 1)],
        "*": [(a, b) for a in range(1, 10) for b in range(1, 100)],
    }


def arithmetic_domains(rng: random.Random) -> list[Domain]:
    """Build the addition, subtraction and multiplication domains."""
    subjects = arithmetic_subjects()
    spec = (("add", "+", ADD_Q, unordered_key, 0.05, 0.16, 70),
            ("sub", "-", SUB_Q, tuple, 0.05, 0.12, 60),
            ("mul", "*", MUL_Q, unordered_key, 0.10, 0.10, 40))
    domains = []
    for name, op, templates, key, fraction, weight, n_eval in spec:
        subs = subjects[op]
        train, held = split_subjects(subs, random_held(subs, key, fraction, rng))
        domains.append(Domain(name, subs, held, train, ask_arith(op, templates),
                              facts_arith(op), weight, n_eval))
    return domains


def table_domains(rng: random.Random) -> list[Domain]:
    """Build the conversion, capital, opposite, plural, number, letter domains."""
    conv = [(p, d, v) for p in range(len(UNITS)) for d in (0, 1) for v in range(1, 100)]
    number = [(n, d) for n in range(1, 999) for d in (0, 1)]
    letter = [(i, 0) for i in range(25)] + [(i, 1) for i in range(1, 26)]
    spec = (
        ("conversion", conv, random_held(conv, lambda s: (s[0], s[2]), 0.10, rng),
         ask_conv, facts_conv, 0.20, 80),
        ("capital", [(i,) for i in range(len(CAPITALS))], every(4, 3),
         ask_capital, facts_capital, 0.14, 40),
        ("opposite", [(i, d) for i in range(len(OPPOSITES)) for d in (0, 1)],
         every(6, 5), ask_opposite, facts_opposite, 0.08, 28),
        ("plural", [(i,) for i in range(len(PLURALS))], every(6, 5),
         ask_plural, facts_plural, 0.08, 18),
        ("number", number, random_held(number, lambda s: s[:1], 0.05, rng),
         ask_number, facts_from_ask(ask_number), 0.07, 56),
        ("letter", letter, every(6, 3), ask_letter, facts_from_ask(ask_letter), 0.05, 8),
    )
    domains = []
    for name, subs, is_held, ask, facts, weight, n_eval in spec:
        train, held = split_subjects(subs, is_held)
        domains.append(Domain(name, subs, held, train, ask, facts, weight, n_eval))
    return domains


def build_domains(rng: random.Random) -> list[Domain]:
    """Build every domain with its seeded train/held-out split."""
    return arithmetic_domains(rng) + table_domains(rng)


def sample_train_item(domains: list[Domain], rng: random.Random) -> Item:
    """Draw one training question from a weighted random domain."""
    domain = rng.choices(domains, weights=[d.weight for d in domains])[0]
    return domain.ask(rng.choice(domain.train), rng)


def to_messages(items: Sequence[Item], system: str | None) -> list[Message]:
    """Turn question/answer items into an OpenAI ``messages`` list."""
    messages = [{"role": "system", "content": system}] if system else []
    for item in items:
        messages.append({"role": "user", "content": item.question})
        messages.append({"role": "assistant", "content": item.answer})
    return messages


def train_conversations(
    domains: list[Domain], count: int, rng: random.Random,
    system_rate: float = SYSTEM_RATE, two_turn_rate: float = TWO_TURN_RATE,
) -> list[list[Message]]:
    """Generate ``count`` training conversations from the train subjects."""
    conversations = []
    for _ in range(count):
        system = rng.choice(SYSTEM_PROMPTS) if rng.random() < system_rate else None
        turns = 2 if rng.random() < two_turn_rate else 1
        items = [sample_train_item(domains, rng) for _ in range(turns)]
        conversations.append(to_messages(items, system))
    return conversations


def eval_items(domain: Domain, rng: random.Random) -> list[Item]:
    """Pick ``domain.eval_count`` distinct questions about held-out subjects."""
    subjects = list(domain.held)
    rng.shuffle(subjects)
    items: list[Item] = []
    seen: set[str] = set()
    for i in range(domain.eval_count * 50):
        if len(items) == domain.eval_count:
            break
        item = domain.ask(subjects[i % len(subjects)], rng)
        if item.question not in seen:
            seen.add(item.question)
            items.append(item)
    return items


def eval_conversations(domains: list[Domain], rng: random.Random) -> list[list[Message]]:
    """Generate the single-turn held-out evaluation conversations."""
    items = [item for d in domains for item in eval_items(d, rng)]
    rng.shuffle(items)
    conversations = []
    for item in items:
        system = rng.choice(SYSTEM_PROMPTS) if rng.random() < SYSTEM_RATE else None
        conversations.append(to_messages([item], system))
    return conversations


PARAGRAPH_LEADS = (
    "", "", "Here are some facts. ", "Remember this. ", "A short lesson. ",
    "Some things we know. ", "Facts of the day. ", "From the notebook. ",
)
PARAGRAPH_WEIGHTS = {
    "add": 2, "sub": 2, "mul": 2, "conversion": 2, "capital": 4,
    "opposite": 2, "plural": 2, "number": 1, "letter": 1,
}


def paragraph(domains: list[Domain], rng: random.Random) -> str:
    """Return one short multi-fact paragraph drawn from all subjects."""
    weights = [PARAGRAPH_WEIGHTS[d.name] for d in domains]
    sentences = []
    for _ in range(rng.randint(2, 4)):
        domain = rng.choices(domains, weights=weights)[0]
        fact = rng.choice(domain.facts(rng.choice(domain.subjects), rng))
        sentences.append(fact if fact.endswith(".") else fact + ".")
    return rng.choice(PARAGRAPH_LEADS) + " ".join(sentences)


QA_FORMATS = ("Question: {q} Answer: {a}", "Q: {q}\tA: {a}", "{q} {a}")


def qa_line(domains: list[Domain], rng: random.Random) -> str:
    """A plain-text question and answer about a train subject (never a held-out one).

    Such lines teach the base model to read a question and copy its operands into the answer,
    as real pre-training text does; held-out subjects appear only as stated facts.
    """
    item = sample_train_item(domains, rng)
    return rng.choice(QA_FORMATS).format(q=item.question, a=item.answer)


def base_corpus(domains: list[Domain], rng: random.Random) -> list[str]:
    """Return shuffled base-corpus lines: every fact, mixed paragraphs and Q&A lines."""
    lines = [fact for d in domains for s in d.subjects for fact in d.facts(s, rng)]
    lines.extend(paragraph(domains, rng) for _ in range(N_PARAGRAPHS))
    qa_rng = random.Random(rng.random())
    lines.extend(qa_line(domains, qa_rng) for _ in range(N_QA_LINES))
    rng.shuffle(lines)
    return lines


ALPACA_INSTRUCTIONS = (
    "Answer the following question.", "Answer the question below exactly.",
    "Respond to the question.",
)
SHAREGPT_ROLES = {"system": "system", "user": "human", "assistant": "gpt"}


def alpaca_records(domains: list[Domain], rng: random.Random) -> list[dict[str, str]]:
    """Return alpaca-shaped records (``instruction``/``input``/``output``)."""
    records = []
    for _ in range(N_ALPACA):
        item = sample_train_item(domains, rng)
        if rng.random() < 0.3:
            instruction, text = rng.choice(ALPACA_INSTRUCTIONS), item.question
        else:
            instruction, text = item.question, ""
        records.append({"instruction": instruction, "input": text, "output": item.answer})
    return records


def sharegpt_records(domains: list[Domain], rng: random.Random) -> list[dict[str, Any]]:
    """Return sharegpt-shaped records (``conversations`` of from/value)."""
    conversations = train_conversations(domains, N_SHAREGPT, rng, 0.25, 0.20)
    return [
        {"conversations": [{"from": SHAREGPT_ROLES[m["role"]], "value": m["content"]}
                           for m in messages]}
        for messages in conversations
    ]


def preference_records(conversations: list[list[Message]], seed: int) -> list[dict[str, Any]]:
    """TRL conversational preference pairs: the right answer chosen, another sample's answer rejected.

    Drawn from its own ``random.Random`` so the other files stay byte-identical.
    """
    rng = random.Random(seed + 1)
    records = []
    for messages in conversations:
        answer = messages[-1]["content"]
        other = answer
        while other == answer:
            other = rng.choice(conversations)[-1]["content"]
        records.append({"prompt": messages[:-1], "chosen": [{"role": "assistant", "content": answer}],
                        "rejected": [{"role": "assistant", "content": other}]})
    return records


def kto_records(conversations: list[list[Message]], seed: int) -> list[dict[str, Any]]:
    """TRL KTO records (``prompt``/``completion``/``label``) from the first ``N_KTO`` conversations.

    Each prompt gets, by a coin toss, its own answer (``label`` true) or the answer of another,
    randomly drawn training conversation (``label`` false), as in ``preference_records``. Drawn
    from its own ``random.Random`` so the other files stay byte-identical.
    """
    rng = random.Random(seed + 2)
    records = []
    for messages in conversations[:N_KTO]:
        answer = messages[-1]["content"]
        desirable = rng.random() < 0.5
        completion = answer
        while not desirable and completion == answer:
            completion = rng.choice(conversations)[-1]["content"]
        records.append({"prompt": messages[:-1], "completion": [{"role": "assistant", "content": completion}],
                        "label": desirable})
    return records


def write_records(path: Path, records: list[dict[str, Any]]) -> None:
    """Write one JSON object per line."""
    write_text(path, "".join(json.dumps(r, ensure_ascii=True) + "\n" for r in records))


def write_text(path: Path, text: str) -> None:
    """Write ASCII text with Unix line endings (raises on non-ASCII)."""
    path.write_bytes(text.encode("ascii"))


def write_jsonl(path: Path, conversations: list[list[Message]]) -> None:
    """Write one ``{"messages": [...]}`` object per line."""
    lines = [json.dumps({"messages": m}, ensure_ascii=True) for m in conversations]
    write_text(path, "\n".join(lines) + "\n")


def write_json(path: Path, records: list[dict[str, Any]]) -> None:
    """Write a JSON array, indented, with a trailing newline."""
    write_text(path, json.dumps(records, ensure_ascii=True, indent=2) + "\n")


def readme(seed: int, counts: dict[str, int], domains: list[Domain]) -> str:
    """Render ``README.md`` describing the generated files."""
    held = domains_by_name(domains)["capital"].held
    capitals = ", ".join(CAPITALS[s[0]][1] for s in held)
    capitals = textwrap.fill(f"Held-out capitals: {capitals}.", width=78)
    eval_counts = ", ".join(f"{d.name} {d.eval_count}" for d in domains)
    eval_counts = textwrap.fill(f"Eval questions per domain: {eval_counts}.", width=78)
    return README_TEMPLATE.format(seed=seed, capitals=capitals,
                                  eval_counts=eval_counts, **counts)


def domains_by_name(domains: list[Domain]) -> dict[str, Domain]:
    """Index domains by name."""
    return {d.name: d for d in domains}


README_TEMPLATE = """\
# Sample datasets

Small, fully deterministic datasets for trying LlamaHome TUI offline. They are
generated by `data/make_samples.py` (standard library only, seed {seed}); do not
edit them by hand. Regenerate with:

    python data/make_samples.py                    # writes data/samples/
    python data/make_samples.py --out DIR --seed N

Running the script twice with the same seed gives byte-identical files; the
unit test `tests/unit/test_samples.py` checks the shipped files match it.

| File | Shape | Records |
| --- | --- | --- |
| `chat_train.jsonl` | one `{{"messages": [...]}}` per line (OpenAI chat) | {train} |
| `chat_eval.jsonl` | same shape, single-turn, held-out subjects | {eval} |
| `base_corpus.txt` | plain text, one fact or short paragraph per line | {corpus} lines |
| `alpaca.json` | JSON array of `{{"instruction", "input", "output"}}` | {alpaca} |
| `sharegpt.json` | JSON array of `{{"conversations": [{{"from", "value"}}]}}` | {sharegpt} |
| `preference_train.jsonl` | TRL pairs `{{"prompt", "chosen", "rejected"}}` (message lists) | {preference} |
| `kto_train.jsonl` | TRL KTO `{{"prompt", "completion", "label"}}` (message lists, a boolean) | {kto} |

Chat messages use roles `system` (optional, first; about 15% of
conversations), then alternating `user` / `assistant`. About 10% of training
conversations are two-turn. ShareGPT uses `system` / `human` / `gpt`.

`preference_train.jsonl` pairs every `chat_train.jsonl` conversation's prompt
(all turns but the last) with its own answer (chosen) and the answer of another,
randomly drawn training conversation (rejected): data for `training.objective =
"dpo"`, `"orpo"` or `"simpo"`. `kto_train.jsonl` gives each of the first {kto}
conversations' prompts either its own answer (`label` true: {kto_desirable} of
them) or another conversation's answer (`label` false), by a seeded coin toss:
data for `training.objective = "kto"`.

## Domains

Every question has exactly one canonical answer, whatever the phrasing:

- addition and subtraction of 0..99, multiplication of 1..9 by 1..99:
  `23 + 45 = 68`, `68 - 23 = 45`, `7 * 12 = 84`
- unit conversion (km/m, m/cm, kg/g, hours/minutes, minutes/seconds,
  litres/millilitres), both directions: `5 km = 5000 m`, `180 minutes = 3 hours`
- capitals of {n_capitals} countries: `The capital of France is Paris.`
- opposites: `The opposite of hot is cold.`
- plurals: `The plural of mouse is mice.`
- next/previous number and letter: `The number after 41 is 42.`,
  `The letter before K is J.`

## Held-out scheme

`chat_eval.jsonl` only asks about subjects that never occur in
`chat_train.jsonl`, `alpaca.json` or `sharegpt.json`: a seeded random subset
of arithmetic operand pairs (unordered for `+` and `*`), conversion
(unit pair, value) combinations and numbers, plus fixed rows of the tables
(every 4th capital, every 6th opposite pair and noun, the letters D, J, P, V).
Held-out subjects still appear in `base_corpus.txt` as plain facts, so a model
pre-trained on it can know them.

{eval_counts}

{capitals}

The evaluator scores exact match of the model's greedy reply against the final
assistant message.
"""


def generate(out_dir: Path, seed: int = DEFAULT_SEED) -> list[Path]:
    """Write every sample file into ``out_dir`` and return their paths."""
    rng = random.Random(seed)
    domains = build_domains(rng)
    train = train_conversations(domains, N_TRAIN, rng)
    evals = eval_conversations(domains, rng)
    corpus = base_corpus(domains, rng)
    alpaca = alpaca_records(domains, rng)
    sharegpt = sharegpt_records(domains, rng)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / name for name in (
        "chat_train.jsonl", "chat_eval.jsonl", "base_corpus.txt",
        "alpaca.json", "sharegpt.json", "README.md", "preference_train.jsonl", "kto_train.jsonl")]
    write_jsonl(paths[0], train)
    write_jsonl(paths[1], evals)
    write_text(paths[2], "\n".join(corpus) + "\n")
    write_json(paths[3], alpaca)
    write_json(paths[4], sharegpt)
    preference = preference_records(train, seed)
    write_records(paths[6], preference)
    kto = kto_records(train, seed)
    write_records(paths[7], kto)
    counts = {"train": len(train), "eval": len(evals), "corpus": len(corpus),
              "alpaca": len(alpaca), "sharegpt": len(sharegpt),
              "n_capitals": len(CAPITALS), "preference": len(preference), "kto": len(kto),
              "kto_desirable": sum(r["label"] for r in kto)}
    write_text(paths[5], readme(seed, counts, domains))
    return paths


def main(argv: Sequence[str] | None = None) -> int:
    """Parse command-line options and generate the sample files."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help="output directory (default: samples/ next to this script)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED,
                        help=f"random seed (default: {DEFAULT_SEED})")
    args = parser.parse_args(argv)
    for path in generate(args.out, args.seed):
        print(f"{path.name}: {path.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
