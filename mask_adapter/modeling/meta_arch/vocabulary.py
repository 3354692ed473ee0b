"""The vocabulary a model classifies against, resolved from dataset metadata in one place."""

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Vocabulary"]


@dataclass(frozen=True)
class Vocabulary:
    """Class strings ("name,synonym,...") in contiguous-id order, and which contiguous ids are things."""

    class_names: tuple[str, ...]
    thing_ids: frozenset[int] = field(default_factory=frozenset)

    @classmethod
    def from_metadata(cls, metadata: Any) -> "Vocabulary":
        """Read ``stuff_classes`` (falling back to ``thing_classes``) from detectron2 metadata."""
        names = getattr(metadata, "stuff_classes", None) or getattr(metadata, "thing_classes", None)
        if not names:
            raise ValueError(
                f"metadata {getattr(metadata, 'name', '?')!r} has neither stuff_classes nor thing_classes; "
                "register the dataset with its class names or call model.set_vocabulary([...])"
            )
        mapping = getattr(metadata, "thing_dataset_id_to_contiguous_id", None)
        if mapping:
            things = frozenset(int(v) for v in mapping.values())
        elif getattr(metadata, "stuff_classes", None) is None:
            things = frozenset(range(len(names)))
        else:
            things = frozenset()
        return cls(tuple(names), things)

    @classmethod
    def from_names(cls, names: list[str], thing_ids: frozenset[int] = frozenset()) -> "Vocabulary":
        if not names:
            raise ValueError("empty vocabulary: give at least one class name")
        return cls(tuple(names), frozenset(thing_ids))

    def __len__(self) -> int:
        return len(self.class_names)
