"""A preference run replayed from the history shows its reward accuracy and margin on the training
screen, at 80x24 too (the numbers row alone had no room for them after loss, lr and tok/s)."""

from __future__ import annotations

from history import T0
from screen_text import line_with

from engine.events import Eval, Finished, Started, Step

RUN = "20260101-000000-dpo1"


def dpo_run(engine) -> str:
    """A finished DPO run in the history: 20 steps with rewards, an evaluation at step 20."""
    store = engine.store
    store.create_run(RUN, "train", {"training": {"method": "lora", "objective": "dpo"}}, "tiny", "/x/pairs.jsonl")
    store.add_event(RUN, Started(RUN, "train", 20, "tiny", "/x/pairs.jsonl"))
    for step in range(1, 21):
        metrics = {"reward_chosen": 0.05 * step, "reward_rejected": -0.07 * step,
                   "reward_margin": 0.12 * step, "reward_accuracy": 0.5 + step / 50}
        store.add_event(RUN, Step(step, 20, step / 100, 0.69 - step / 100, 1e-3, 1.0, 900.0, step * 0.5,
                                  metrics=metrics))
    store.add_event(RUN, Eval(20, 0.41, 1.5, metrics={"reward_chosen": 0.9, "reward_rejected": -1.2,
                                                      "reward_margin": 2.1, "reward_accuracy": 0.85}))
    store.add_event(RUN, Finished({"last_loss": 0.49, "eval_loss": 0.41, "eval_reward_accuracy": 0.85}))
    store.update_run(RUN, status="finished", started_at=T0, ended_at=T0 + 40, created_at=T0)
    return RUN


async def test_a_replayed_dpo_run_shows_reward_accuracy_and_margin_at_80_columns(make_app, engine):
    app = make_app("training", run_id=dpo_run(engine))
    async with app.run_test(size=(80, 24)) as pilot:
        for _ in range(40):
            await pilot.pause(0.1)
            if "step 20/20" in str(app.screen.query_one("#progress-text").render()):
                break
        await pilot.pause(0.2)
        row = line_with(app, "reward accuracy 0.90")
        assert "margin 2.400" in row, row  # the last step's
        assert "eval margin 2.100  reward accuracy 0.85" in row, row  # the evaluation's
        assert "tok/s 900" in line_with(app, "loss 0.4900")
