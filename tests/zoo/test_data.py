"""Batches and batch-level augmentation of in-memory splits."""

from __future__ import annotations

import pytest
import torch

from zoo.data import Batches, MixUp, TensorSplit, compose, random_hflip, random_shift

CPU = torch.device("cpu")


def test_batches_cover_every_sample_once_and_match_the_generic_path() -> None:
    images = torch.arange(10 * 4, dtype=torch.uint8).reshape(10, 1, 2, 2)
    split = TensorSplit(images, torch.arange(10))
    fast = list(Batches(split, 4, CPU))
    generic = list(Batches(list(split), 4, CPU))  # a list is a Dataset too
    assert [len(y) for _, y in fast] == [4, 4, 2]
    for (x1, y1), (x2, y2) in zip(fast, generic):
        assert torch.equal(x1, x2) and torch.equal(y1, y2)
    shuffled = Batches(split, 4, CPU, shuffle=True, order=torch.Generator().manual_seed(1))
    first, second = (torch.cat([y for _, y in shuffled]) for _ in range(2))
    assert sorted(first.tolist()) == list(range(10)) and first.tolist() != second.tolist()


def test_hflip_mirrors_about_half_the_images() -> None:
    images = torch.rand(1000, 1, 3, 3)
    flipped = random_hflip(images, torch.Generator().manual_seed(0))
    same = torch.tensor([torch.equal(a, b) for a, b in zip(images, flipped)])
    mirrored = torch.tensor([torch.equal(a.flip(-1), b) for a, b in zip(images, flipped)])
    assert bool((same | mirrored).all()) and 400 < int(mirrored.sum()) < 600


def test_shift_moves_each_image_within_bounds_and_keeps_its_content() -> None:
    image = torch.zeros(1, 1, 9, 9)
    image[0, 0, 4, 4] = 1.0  # one bright pixel in the middle
    batch = image.repeat(500, 1, 1, 1)
    shifted = random_shift(2)(batch, torch.Generator().manual_seed(0))
    assert shifted.shape == batch.shape and torch.equal(shifted.sum(dim=(1, 2, 3)), torch.ones(500))
    positions = {tuple(int(i) for i in torch.nonzero(s[0])[0]) for s in shifted}
    assert positions == {(r, c) for r in range(2, 7) for c in range(2, 7)}  # every offset in [-2, 2]², nothing beyond


def test_augmentation_applies_to_training_batches_only_and_is_seeded() -> None:
    split = TensorSplit(torch.rand(64, 1, 4, 4), torch.zeros(64, dtype=torch.long), compose(random_hflip))

    def epoch(seed: int, augment: bool) -> torch.Tensor:
        return torch.cat([x for x, _ in Batches(split, 16, CPU, augment=torch.Generator().manual_seed(seed) if augment else None)])

    assert torch.equal(epoch(0, augment=False), split.images)
    assert torch.equal(epoch(0, True), epoch(0, True)) and not torch.equal(epoch(0, True), epoch(1, True))


def test_an_epochs_draws_are_taken_at_once_and_equal_drawing_batch_by_batch() -> None:
    """The built-in augmentations are drawn for the whole epoch when it starts (one copy to a GPU, no
    per-step copy); the numbers, and the generator's state before each batch, are those of drawing
    per batch, so checkpoints and resumes mean what they meant."""
    augment = compose(random_hflip, random_shift(2))
    split = TensorSplit(torch.rand(70, 1, 6, 6), torch.arange(70), augment)
    batches = Batches(split, 16, CPU, shuffle=True, order=torch.Generator().manual_seed(3), augment=torch.Generator().manual_seed(4))
    drawn = list(batches.iterate())

    order, per_batch = torch.Generator().manual_seed(3), torch.Generator().manual_seed(4)
    rows = torch.randperm(70, generator=order)
    states = []
    for index, start in enumerate(range(0, 70, 16)):
        states.append(per_batch.get_state())
        assert torch.equal(batches.augment_state(index), states[-1])
        expected = augment(split.images[rows[start : start + 16]], per_batch)  # type: ignore[misc]
        assert torch.equal(drawn[index][0], expected) and torch.equal(drawn[index][1], rows[start : start + 16])
    assert torch.equal(batches.augment_state(5), per_batch.get_state())  # after the last batch
    assert torch.equal(batches.augment.get_state(), per_batch.get_state())  # type: ignore[union-attr]

    batches.order.manual_seed(3)  # a resume at batch 3: the epoch's order again, the generator as before batch 3
    batches.augment.set_state(states[3])  # type: ignore[union-attr]
    tail = list(batches.iterate(3))
    assert len(tail) == 2 and all(torch.equal(a[0], b[0]) for a, b in zip(tail, drawn[3:]))


def test_mixup_mixes_each_image_and_its_label_with_the_previous_one_alike() -> None:
    images, labels = torch.rand(320, 1, 4, 4), torch.arange(320) % 10  # neighbours have different labels
    batches = Batches(TensorSplit(images, labels), 16, CPU, augment=torch.Generator().manual_seed(0), mix=MixUp(0.4, 10))
    lams = []
    for index, (X, targets) in enumerate(batches):
        rows = slice(16 * index, 16 * index + 16)
        assert targets.shape == (16, 10) and torch.allclose(targets.sum(1), torch.ones(16))
        lam = targets[torch.arange(16), labels[rows]]  # the weight of each image's own label
        assert torch.allclose(targets[torch.arange(16), labels[rows].roll(1)], 1 - lam)
        expected = images[rows] * lam[:, None, None, None] + images[rows].roll(1, 0) * (1 - lam[:, None, None, None])
        assert torch.allclose(X, expected, atol=1e-6)
        assert torch.all(lam == lam[0])  # one lam per batch
        lams.append(float(lam[0]))
    lam = torch.tensor(lams)
    assert 0 <= float(lam.min()) and float(lam.max()) <= 1 and float(lam.std()) > 0.2  # Beta(0.4, 0.4): mostly near 0 or 1


def test_mixup_takes_class_probabilities_of_any_dtype() -> None:
    """A plugin's split may hold one-hot labels as integers or halves: mixed, they become float probabilities."""
    mix, lam = MixUp(0.4, 3), [torch.full((2,), 0.25)]
    for one_hot in (torch.tensor([[1, 0, 0], [0, 1, 0]]), torch.tensor([[True, False, False], [False, True, False]]),
                    torch.tensor([[1.0, 0, 0], [0, 1, 0]], dtype=torch.float16)):
        mixed = mix.apply_labels(one_hot, lam)
        assert mixed.dtype == torch.float32 and torch.allclose(mixed, torch.tensor([[0.25, 0.75, 0], [0.75, 0.25, 0]]))
    assert mix.apply_labels(torch.tensor([[1.0, 0, 0], [0, 1, 0]], dtype=torch.float64), lam).dtype == torch.float64


def test_mixup_without_reshuffling_draws_new_partners_every_batch() -> None:
    """Unshuffled batches are the same every epoch: mixing each image with its neighbour would mix the same pairs."""
    images, labels = torch.rand(64, 1, 2, 2), (torch.arange(64) % 16).to(torch.uint8)  # 16 distinct labels a batch; uint8 as some datasets keep them
    batches = Batches(TensorSplit(images, labels), 16, CPU, augment=torch.Generator().manual_seed(0), mix=MixUp(0.4, 16, shuffled=False))

    def partners() -> list[int]:
        found = []
        for index, (X, targets) in enumerate(batches):
            rows = torch.arange(16 * index, 16 * index + 16)
            assert targets.shape == (16, 16) and targets.dtype == torch.float32
            for i, row in enumerate(rows.tolist()):
                own = int(labels[row])
                others = [c for c in range(16) if c != own and float(targets[i, c]) > 0]
                partner = 16 * index + (others[0] if others else own)
                lam = float(targets[i, own]) if others else 1.0
                assert torch.allclose(X[i], images[row] * lam + images[partner] * (1 - lam), atol=1e-6)
                found.append(partner)
        return found

    first, second = partners(), partners()
    assert first != second and len(set(first)) > 32


def test_mixup_resumes_mid_epoch_with_the_same_mixes() -> None:
    split = TensorSplit(torch.rand(70, 1, 6, 6), torch.arange(70) % 10, compose(random_hflip, random_shift(1)))

    def batches() -> Batches:
        return Batches(split, 16, CPU, shuffle=True, order=torch.Generator().manual_seed(3), augment=torch.Generator().manual_seed(4),
                       mix=MixUp(1.0, 10))

    whole = batches()
    drawn = list(whole.iterate())
    state = whole.augment_state(3)
    resumed = batches()
    resumed.augment.set_state(state)  # type: ignore[union-attr]
    tail = list(resumed.iterate(3))
    assert len(tail) == 2 and all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(tail, drawn[3:]))


def test_mixup_needs_an_in_memory_split_with_a_drawn_augmentation() -> None:
    plain = TensorSplit(torch.rand(8, 1, 2, 2), torch.arange(8), lambda images, generator: images)
    for split in (plain, list(TensorSplit(torch.rand(8, 1, 2, 2), torch.arange(8)))):
        with pytest.raises(ValueError, match="mixing needs a split held in memory"):
            Batches(split, 4, CPU, augment=torch.Generator(), mix=MixUp(0.4, 10))


def test_stratified_batches_hold_each_class_in_proportion_and_are_reshuffled() -> None:
    """FashionMNIST-like: 10 classes of 600 in a 6000-image split, batches of 256: every class 24-27 times in a full
    batch (a plain shuffle: about 14-38), every image once, neighbours of one class about as often as chance."""
    from zoo.data import stratified_order

    labels = torch.arange(6000) % 10
    split = TensorSplit(torch.zeros(6000, 1, 1, 1), labels[torch.randperm(6000, generator=torch.Generator().manual_seed(0))])
    batches = Batches(split, 256, CPU, shuffle=True, order=torch.Generator().manual_seed(1), stratify=True)
    first, second = (torch.cat([y for _, y in batches]) for _ in range(2))
    assert first.tolist() != second.tolist()
    order = stratified_order(split.labels, 256, torch.Generator().manual_seed(2))
    assert sorted(order.tolist()) == list(range(6000))
    counts = [torch.bincount(y, minlength=10) for _, y in list(batches)[:-1]]
    assert all(24 <= int(c.min()) and int(c.max()) <= 27 for c in counts), counts
    same_class_neighbours = (first[1:] == first[:-1]).float().mean().item()
    assert 0.07 < same_class_neighbours < 0.13  # chance is 0.1; without the shuffle within batches it would be about 0
    assert torch.equal(stratified_order(split.labels, 256, torch.Generator().manual_seed(2)), order)  # drawn from the generator alone
    with pytest.raises(ValueError, match="need shuffle"):
        Batches(split, 256, CPU, stratify=True)
