"""Text classifier: templates, synonyms, encoding, caching, category overlap.

A fake text tower maps each prompt string to a fixed pseudo-random vector, so expected embeddings can be
computed by hand; one test uses the real tiny CLIP text tower.
"""

import hashlib

import pytest
import torch
import torch.nn.functional as F

from mask_adapter.modeling.text.classifier import (
    TextClassifier,
    TextEmbeddings,
    category_overlap_mask,
    split_synonyms,
)
from mask_adapter.modeling.text.templates import VILD_TEMPLATES

D = 8

OFFICIAL_TEMPLATES = [
    "a photo of a {}.",
    "This is a photo of a {}",
    "There is a {} in the scene",
    "There is the {} in the scene",
    "a photo of a {} in the scene",
    "a photo of a small {}.",
    "a photo of a medium {}.",
    "a photo of a large {}.",
    "This is a photo of a small {}.",
    "This is a photo of a medium {}.",
    "This is a photo of a large {}.",
    "There is a small {} in the scene.",
    "There is a medium {} in the scene.",
    "There is a large {} in the scene.",
]


def prompt_vector(prompt: str, salt: str = "") -> torch.Tensor:
    """A deterministic, unnormalised (D,) vector for a prompt (scale varies so normalisation matters)."""
    seed = int(hashlib.sha256((salt + prompt).encode()).hexdigest()[:8], 16)
    g = torch.Generator().manual_seed(seed)
    return torch.randn(D, generator=g, dtype=torch.float64).float() * (1 + 9 * torch.rand(1, generator=g))


class FakeTextTower:
    """tokenize: prompts -> (n, 1) ids into a prompt table; encode_text: ids -> (n, D). Records every call."""

    def __init__(self, salt: str = "") -> None:
        self.salt = salt
        self.table: list[str] = []
        self.ids: dict[str, int] = {}
        self.encode_calls: list[int] = []  # batch size of each encode call

    def tokenize(self, prompts: list[str]) -> torch.Tensor:
        for p in prompts:
            if p not in self.ids:
                self.ids[p] = len(self.table)
                self.table.append(p)
        return torch.tensor([[self.ids[p]] for p in prompts], dtype=torch.long)

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        self.encode_calls.append(tokens.shape[0])
        return torch.stack([prompt_vector(self.table[int(i)], self.salt) for i in tokens[:, 0]])

    @property
    def prompts_encoded(self) -> int:
        return sum(self.encode_calls)


def make_classifier(tower: FakeTextTower, **kwargs) -> TextClassifier:
    kwargs.setdefault("model_id", "fake-model|fake-weights")
    return TextClassifier(tokenize=tower.tokenize, encode_text=tower.encode_text, **kwargs)


def expected_embeddings(class_names: list[str], templates=OFFICIAL_TEMPLATES, salt: str = "") -> torch.Tensor:
    rows = []
    for name in class_names:
        for syn in split_synonyms(name):
            vecs = torch.stack([F.normalize(prompt_vector(t.format(syn), salt), dim=-1) for t in templates])
            rows.append(F.normalize(vecs.mean(0), dim=-1))
    return torch.stack(rows)


# ----------------------------------------------------------------------------------------------------------------
# Templates and synonyms
# ----------------------------------------------------------------------------------------------------------------
def test_vild_templates_verbatim_and_in_order():
    assert list(VILD_TEMPLATES) == OFFICIAL_TEMPLATES
    assert len(VILD_TEMPLATES) == 14
    # templates 2-5 have no final period (data, not a typo to fix)
    assert [t.endswith(".") for t in VILD_TEMPLATES[1:5]] == [False] * 4


def test_default_templates_are_vild():
    assert make_classifier(FakeTextTower()).templates == tuple(OFFICIAL_TEMPLATES)


@pytest.mark.parametrize(
    "text,expected",
    [
        ("a, b,c", ["a", "b", "c"]),
        ("person", ["person"]),
        ("person, people, human", ["person", "people", "human"]),
        ("traffic light,stoplight", ["traffic light", "stoplight"]),
    ],
)
def test_split_synonyms(text, expected):
    assert split_synonyms(text) == expected


def test_category_overlap_mask():
    train = ["person, man,woman", "tree", "Car"]
    test = ["man,guy", "sky", "car", "trees", "tree, plant", "Person", "woman"]
    mask = category_overlap_mask(test, train)
    assert mask.dtype == torch.bool
    assert mask.tolist() == [True, False, False, False, True, False, True]


# ----------------------------------------------------------------------------------------------------------------
# Encoding
# ----------------------------------------------------------------------------------------------------------------
def test_per_synonym_template_averaging():
    tower = FakeTextTower()
    classes = ["cat", "dog, puppy,hound", "traffic light"]
    result = make_classifier(tower)(classes)
    assert isinstance(result, TextEmbeddings)
    assert result.synonyms_per_class == [1, 3, 1]
    assert result.embeddings.shape == (5, D)
    torch.testing.assert_close(result.embeddings.norm(dim=-1), torch.ones(5))
    torch.testing.assert_close(result.embeddings, expected_embeddings(classes), rtol=1e-5, atol=1e-6)
    assert tower.prompts_encoded == 5 * 14
    # every filled template was encoded, each exactly once
    assert sorted(tower.table) == sorted(
        t.format(s) for s in ["cat", "dog", "puppy", "hound", "traffic light"] for t in OFFICIAL_TEMPLATES
    )


def test_chunking_gives_same_result():
    classes = ["cat,kitty", "dog", "bird,birdie,fowl"]
    tower_small, tower_big = FakeTextTower(), FakeTextTower()
    small = make_classifier(tower_small, chunk_size=5)(classes)
    big = make_classifier(tower_big, chunk_size=128)(classes)
    torch.testing.assert_close(small.embeddings, big.embeddings, rtol=0, atol=1e-6)
    assert small.synonyms_per_class == big.synonyms_per_class == [2, 1, 3]
    n_prompts = 6 * 14
    assert max(tower_small.encode_calls) <= 5 and sum(tower_small.encode_calls) == n_prompts
    assert len(tower_small.encode_calls) == -(-n_prompts // 5)
    assert tower_big.encode_calls == [n_prompts]


def test_custom_templates():
    templates = ["{}", "a {} here"]
    tower = FakeTextTower()
    result = make_classifier(tower, templates=templates)(["cat", "dog"])
    torch.testing.assert_close(result.embeddings, expected_embeddings(["cat", "dog"], templates), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match=r"exactly one '\{\}'"):
        make_classifier(tower, templates=["no placeholder"])
    with pytest.raises(ValueError, match=r"exactly one '\{\}'"):
        make_classifier(tower, templates=[])


def test_device_argument():
    result = make_classifier(FakeTextTower())(["cat"], device=torch.device("cpu"))
    assert result.embeddings.device.type == "cpu"


def test_empty_vocabulary_error():
    with pytest.raises(ValueError, match="empty vocabulary"):
        make_classifier(FakeTextTower())([])


@pytest.mark.parametrize("bad", ["cat,,dog", "cat, ", ",cat", "  "])
def test_empty_synonym_error(bad):
    with pytest.raises(ValueError, match="empty synonym"):
        make_classifier(FakeTextTower())(["bird", bad])


# ----------------------------------------------------------------------------------------------------------------
# Caching
# ----------------------------------------------------------------------------------------------------------------
def test_memory_cache_hit_encodes_once():
    tower = FakeTextTower()
    clf = make_classifier(tower)
    first = clf(["cat", "dog,puppy"])
    calls = len(tower.encode_calls)
    second = clf(["cat", "dog,puppy"])
    assert len(tower.encode_calls) == calls
    assert torch.equal(first.embeddings, second.embeddings) and first.synonyms_per_class == second.synonyms_per_class


def test_memory_cache_misses_on_any_key_change():
    tower = FakeTextTower()
    clf = make_classifier(tower)
    vocab = ["cat", "dog,puppy"]
    clf(vocab)
    n = tower.prompts_encoded
    # vocabulary content
    clf(["cat", "dog"])
    assert tower.prompts_encoded > n
    n = tower.prompts_encoded
    clf(["dog,puppy", "cat"])  # order is part of the vocabulary
    assert tower.prompts_encoded > n
    n = tower.prompts_encoded
    # model identity
    clf.model_id = "other-model|other-weights"
    clf(vocab)
    assert tower.prompts_encoded > n
    n = tower.prompts_encoded
    # templates
    clf.templates = tuple(OFFICIAL_TEMPLATES[:3])
    out = clf(vocab)
    assert tower.prompts_encoded == n + 3 * 3
    torch.testing.assert_close(out.embeddings, expected_embeddings(vocab, OFFICIAL_TEMPLATES[:3]), rtol=1e-5, atol=1e-6)


def test_cache_key_components():
    clf = make_classifier(FakeTextTower())
    key = clf.cache_key(["cat", "dog"])
    assert key == make_classifier(FakeTextTower()).cache_key(["cat", "dog"])
    assert key != clf.cache_key(["cat", "dog,puppy"])
    assert key != make_classifier(FakeTextTower(), model_id="x|y").cache_key(["cat", "dog"])
    assert key != make_classifier(FakeTextTower(), templates=OFFICIAL_TEMPLATES[::-1]).cache_key(["cat", "dog"])


def test_memory_slots_evict_least_recent():
    tower = FakeTextTower()
    clf = make_classifier(tower, memory_slots=2)
    a, b, c = ["cat"], ["dog"], ["bird"]
    clf(a), clf(b), clf(a), clf(c)  # a was used more recently than b -> b is evicted
    n = tower.prompts_encoded
    clf(a)
    assert tower.prompts_encoded == n
    clf(b)
    assert tower.prompts_encoded == n + 14


def test_disk_cache_round_trip(tmp_path):
    cache = tmp_path / "text_cache"
    vocab = ["cat,kitty", "dog"]
    tower = FakeTextTower()
    first = make_classifier(tower, cache_dir=str(cache))(vocab)
    files = list(cache.glob("*.pt"))
    assert len(files) == 1 and not list(cache.glob("*.tmp"))

    class NoEncode(FakeTextTower):
        def encode_text(self, tokens):
            raise AssertionError("must load from the disk cache, not encode")

    second = make_classifier(NoEncode(), cache_dir=str(cache))(vocab)
    assert torch.equal(second.embeddings, first.embeddings)
    assert second.synonyms_per_class == first.synonyms_per_class == [2, 1]


def test_disk_cache_file_of_earlier_versions_is_read(tmp_path):
    """Cache files written before the counts were renamed store them under "num_templates"."""
    cache = tmp_path / "text_cache"
    vocab = ["cat,kitty", "dog"]
    first = make_classifier(FakeTextTower(), cache_dir=str(cache))(vocab)
    (path,) = cache.glob("*.pt")
    torch.save({"embeddings": first.embeddings, "num_templates": torch.tensor([2, 1])}, path)

    class NoEncode(FakeTextTower):
        def encode_text(self, tokens):
            raise AssertionError("must load from the disk cache, not encode")

    second = make_classifier(NoEncode(), cache_dir=str(cache))(vocab)
    assert torch.equal(second.embeddings, first.embeddings) and second.synonyms_per_class == [2, 1]


def test_disk_cache_no_stale_hit_across_model_or_templates(tmp_path):
    cache = str(tmp_path)
    vocab = ["cat", "dog"]
    make_classifier(FakeTextTower(), cache_dir=cache, model_id="modelA|tagA")(vocab)

    other = FakeTextTower(salt="B")  # a different text tower gives different embeddings
    out = make_classifier(other, cache_dir=cache, model_id="modelB|tagA")(vocab)
    assert other.prompts_encoded == 2 * 14
    torch.testing.assert_close(out.embeddings, expected_embeddings(vocab, salt="B"), rtol=1e-5, atol=1e-6)

    weights = FakeTextTower(salt="C")
    make_classifier(weights, cache_dir=cache, model_id="modelA|file-sha256:0123")(vocab)
    assert weights.prompts_encoded == 2 * 14

    templ = FakeTextTower()
    make_classifier(templ, cache_dir=cache, model_id="modelA|tagA", templates=["{}"])(vocab)
    assert templ.prompts_encoded == 2
    assert len(list(tmp_path.glob("*.pt"))) == 4


def test_disk_cache_concurrent_writers_of_the_same_entry(tmp_path, monkeypatch):
    """Two ranks encode the same vocabulary at once: rank B writes the entry between rank A's save and replace."""
    vocab = ["cat", "dog,puppy"]
    rank_b = make_classifier(FakeTextTower(), cache_dir=str(tmp_path))
    real_save = torch.save
    interleaved = []

    def save_then_let_rank_b_run(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)
        if not interleaved:
            interleaved.append(True)
            rank_b(vocab)

    monkeypatch.setattr(torch, "save", save_then_let_rank_b_run)
    out = make_classifier(FakeTextTower(), cache_dir=str(tmp_path))(vocab)
    assert interleaved and out.synonyms_per_class == [1, 2]
    monkeypatch.undo()
    files = list(tmp_path.glob("*.pt"))
    assert len(files) == 1 and not list(tmp_path.glob("*.tmp*"))

    class NoEncode(FakeTextTower):
        def encode_text(self, tokens):
            raise AssertionError("must load from the disk cache")

    loaded = make_classifier(NoEncode(), cache_dir=str(tmp_path))(vocab)
    torch.testing.assert_close(loaded.embeddings, out.embeddings)


def test_no_disk_writes_without_cache_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    make_classifier(FakeTextTower())(["cat"])
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------------------------------------------
# Real tiny CLIP text tower
# ----------------------------------------------------------------------------------------------------------------
def test_with_tiny_clip(tiny_clip):
    clf = TextClassifier(
        tokenize=tiny_clip.tokenize,
        encode_text=tiny_clip.encode_text,
        model_id=f"{tiny_clip.model_name}|{tiny_clip.text_tower_fingerprint()}",
    )
    result = clf(["cat", "dog, puppy", "traffic light"])
    assert result.synonyms_per_class == [1, 2, 1]
    assert result.embeddings.shape == (4, 64)
    assert result.embeddings.dtype == torch.float32
    torch.testing.assert_close(result.embeddings.norm(dim=-1), torch.ones(4), rtol=0, atol=1e-5)
    # row 0 is the normalised mean of the 14 normalised prompt embeddings of "cat"
    prompts = [t.format("cat") for t in OFFICIAL_TEMPLATES]
    manual = F.normalize(F.normalize(tiny_clip.encode_text(tiny_clip.tokenize(prompts)), dim=-1).mean(0), dim=-1)
    torch.testing.assert_close(result.embeddings[0], manual, rtol=0, atol=1e-5)
