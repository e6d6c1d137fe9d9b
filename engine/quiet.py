"""Keep harmless library start-up notes away from users.

bitsandbytes logs that an optional ``kernels`` package is missing (that package would fetch
kernels from a hub, so it stays out), torch warns about enum registrations made by torchao, and
torchao makes transformers log failed optional ``.so`` loads; peft and torchao raise deprecation
warnings from inside their own code while a qlora or qat run trains or saves. None of it is
actionable.
"""

from __future__ import annotations

import logging
import os
import warnings

_NOISY_LOGGERS = ("bitsandbytes", "torchao", "torch.utils._pytree", "transformers.utils.import_utils")


def quiet_libraries() -> None:
    """Silence known start-up noise before torch, transformers or bitsandbytes are imported."""
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    for name in _NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=".*Enum subclass.*")
    # peft's prepare_model_for_kbit_training asks transformers a deprecated question (qlora).
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*deprecated", category=FutureWarning)
    # torchao's tensor subclasses touch TypedStorage while a quantized model is saved (qat).
    warnings.filterwarnings("ignore", message="TypedStorage is deprecated", category=UserWarning)
