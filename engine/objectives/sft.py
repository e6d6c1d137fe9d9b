"""``sft``: supervised fine-tuning on chat data, the loss on the trained (answer) tokens.

The behaviour of the base ``Objective``: the data layer's padded, bucketed or packed batches and
the model's own mean next-token loss over the trained tokens.
"""

from __future__ import annotations

from engine.objectives.base import Objective


class SupervisedFineTuning(Objective):
    """Next-token loss on the tokens ``data.train_on`` selects."""

    name = "sft"
    records = "chat"


OBJECTIVE = SupervisedFineTuning
