from .classifier import TextClassifier, TextEmbeddings, category_overlap_mask, split_synonyms
from .templates import VILD_TEMPLATES
