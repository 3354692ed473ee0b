"""Meta-architectures. ``OpenVocabMaskFormer`` is the shared template; the rest are registered."""

from .base import ForwardState, OpenVocabMaskFormer
from .fcclip import FCCLIP, MAFTPlus
from .inference import geometric_ensemble
from .mask2former import Mask2FormerCLIP
from .sam import SAMMaskAdapter
from .state import Proposals
from .vocabulary import Vocabulary
from .warmup import MaskAdapterWarmup
