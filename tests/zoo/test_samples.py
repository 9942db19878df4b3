"""A dataset that breaks its side of the contract is named, with what to fix, before the model or the loss is blamed."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import zoo
from zoo.data import TensorSplit


def splits(train, test=None, input_shape=(1, 28, 28), classes=5):
    return zoo.DatasetSplits(train, test if test is not None else train, [f"c{k}" for k in range(classes)], input_shape)


def images(n=8, dtype=torch.uint8):
    return torch.zeros(n, 1, 28, 28, dtype=dtype)


CASES = {
    "pil": (lambda p: splits([(Image.new("L", (28, 28)), 0)] * 4), r"its training split gives images of type Image, not torch tensors: "
                                                                  r"convert them \(torchvision's transforms.ToTensor\(\)"),
    "hwc-array": (lambda p: splits([(np.zeros((28, 28, 1), np.uint8), 0)] * 4), r"gives images of type ndarray, not torch tensors"),
    "bare-images": (lambda p: splits([torch.zeros(1, 28, 28)] * 4), r"gives items of type Tensor; each item must be a pair \(image tensor, label\)"),
    "shape": (lambda p: splits(TensorSplit(images(), torch.zeros(8, dtype=torch.long)), input_shape=(3, 32, 32)),
              r"gives images of shape \(1, 28, 28\), but the dataset declares input_shape \(3, 32, 32\)"),
    "uint8-listed": (lambda p: splits([(torch.zeros(1, 28, 28, dtype=torch.uint8), 0)] * 4), r"images of dtype uint8; they must be float tensors in \[0, 1\] \(torchvision.s ToTensor\(\) scales uint8 pixels\)"),
    "float-labels": (lambda p: splits(TensorSplit(images(), torch.zeros(8))), r"gives labels of type float32; labels are class numbers, whole numbers 0..4"),
    "float-label": (lambda p: splits([(torch.zeros(1, 28, 28), 1.0)] * 4), r"gives labels of type float"),
    "from-one": (lambda p: splits(TensorSplit(images(), torch.arange(1, 9) % 5 + 1)), r"its training split has labels from 1 to 5, but its 5 classes "
                                                                                      r"are numbered 0..4 \(the first class is label 0\)"),
    "test-out-of-range": (lambda p: splits(TensorSplit(images(), torch.zeros(8, dtype=torch.long)), TensorSplit(images(), torch.full((8,), 7))),
                          r"its test split has labels from 7 to 7"),
}


class Broken:
    @zoo.hookimpl
    def register_datasets(self, register):
        for name, (factory, _) in CASES.items():
            register(name, factory)
        register("fine-listed", lambda p: splits([(torch.zeros(1, 28, 28), np.int64(2)), (torch.zeros(1, 28, 28), np.array(3))] * 2))
        soft = torch.full((8, 5), 0.05).scatter_(1, (torch.arange(8) % 5)[:, None], 0.8)  # class probabilities, as distillation gives
        register("soft-labels", lambda p: splits(TensorSplit(images(), soft), TensorSplit(images(), torch.arange(8) % 5)))


@pytest.mark.parametrize("name", CASES)
def test_a_dataset_breaking_the_contract_is_named_with_what_to_fix(name: str) -> None:
    with pytest.raises(zoo.ZooError, match=rf"^The dataset '{name}' \(plugin 'Broken' \(in-process\)\): .*" + CASES[name][1]):
        zoo.api.check(model="mlp-8", dataset=name, catalog=zoo.catalog(extra_plugins=[Broken()]))


@pytest.mark.filterwarnings("ignore:Creating a tensor from a list of numpy")  # torch's, collating 0-d arrays: slow, not wrong
def test_numpy_integer_labels_soft_labels_and_float_images_are_fine() -> None:
    catalog = zoo.catalog(extra_plugins=[Broken()])
    checked = zoo.api.check(model="mlp-8", dataset="fine-listed", catalog=catalog)
    assert checked.train_samples == 4 and checked.classes == 5
    assert zoo.api.check(model="mlp-8", dataset="soft-labels", catalog=catalog).train_samples == 8


class LateLabel:
    @zoo.hookimpl
    def register_datasets(self, register):
        items = [(torch.zeros(1, 28, 28), k % 5) for k in range(8)]
        items[6] = (torch.zeros(1, 28, 28), 7)  # past the items the check looks at: found by the loss while training
        register("late-label", lambda p: splits(items))


def test_a_label_out_of_range_found_while_training_names_the_dataset(tmp_path) -> None:
    with pytest.raises(zoo.ZooError, match=r"^Training failed at epoch 1, step 2: the dataset 'late-label' \(plugin 'LateLabel' \(in-process\)\) gave "
                                           r"a label outside its classes \(IndexError: Target 7 is out of bounds \(the dataset has 5 classes\)\); labels are class numbers"):
        zoo.run(model="mlp-8", dataset="late-label", batch_size=4, epochs=1, catalog=zoo.catalog(extra_plugins=[LateLabel()]),
                out=tmp_path / "run", reporters=[])


class SortedByClass:
    @zoo.hookimpl
    def register_datasets(self, register):
        register("sorted", lambda p: splits(TensorSplit(images(40), torch.arange(40) // 8)))  # a folder per class, read in order
        mostly_one = (torch.rand(400, generator=torch.Generator().manual_seed(0)) < 0.05).long()  # shuffled, 95% of class 0
        register("mostly-one", lambda p: splits(TensorSplit(images(400), mostly_one), classes=2))


def test_data_ordered_by_class_without_shuffling_is_pointed_out(capsys: pytest.CaptureFixture[str]) -> None:
    catalog = zoo.catalog(extra_plugins=[SortedByClass()])
    zoo.api.check(model="mlp-8", dataset="sorted", catalog=catalog)
    assert "Note: the training split of sorted lists its classes one after another and shuffle is off" in capsys.readouterr().err
    zoo.api.check(model="mlp-8", dataset="sorted", catalog=catalog, shuffle=True)
    zoo.api.check(model="mlp-8", dataset="mostly-one", catalog=catalog)  # neighbours alike by the classes' shares, not their order
    assert "Note:" not in capsys.readouterr().err


def test_a_class_without_training_samples_is_pointed_out() -> None:
    from zoo.samples import data_notes

    data = splits(TensorSplit(images(6), torch.tensor([0, 1, 3, 0, 1, 3])))
    assert data_notes("folders", data, shuffle=True) == ["the training split of folders has no sample of class(es) c2, c4; the model cannot learn them."]
