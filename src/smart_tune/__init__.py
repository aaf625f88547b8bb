"""smart-tune: SMART fine-tuning (Jiang et al., ACL 2020) for Hugging Face models.

Trainer users change two names: ``SmartTrainingArguments`` and ``SmartTrainer``. People with their own
training loop use the pieces: ``AdversarialRegularizer`` (R_s), ``NoiseRegularizer`` (R3F),
``MeanTeacher`` (momentum Bregman proximal point) and the divergences ℓ_s.
"""

from .adversarial import AdversarialRegularizer, NoiseRegularizer, RegularizerOutput, capture_rng_state
from .divergences import binary_symmetric_kl, smoothness_divergence, squared_error, symmetric_kl
from .errors import ConfigError, DataError, SmartTuneError
from .objective import SmartObjective, SmartTerms
from .teacher import MeanTeacher
from .trainer import SmartTrainer, SmartTrainingArguments

__version__ = "0.1.0"

__all__ = [
    "AdversarialRegularizer",
    "ConfigError",
    "DataError",
    "MeanTeacher",
    "NoiseRegularizer",
    "RegularizerOutput",
    "SmartObjective",
    "SmartTerms",
    "SmartTrainer",
    "SmartTrainingArguments",
    "SmartTuneError",
    "__version__",
    "binary_symmetric_kl",
    "capture_rng_state",
    "smoothness_divergence",
    "squared_error",
    "symmetric_kl",
]
