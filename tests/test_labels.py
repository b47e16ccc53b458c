"""The one class-index check: what it takes (as int64), what it refuses with the fix, and that it
reads no values back from an accelerator when the caller says not to."""

import numpy as np
import pytest
import torch

from augmentgen._labels import check_class_indices, check_one_label_per_image, shown_values
from augmentgen.errors import DataError


def refusal(labels, *args, **kwargs) -> str:
    with pytest.raises(DataError) as info:
        check_class_indices(labels, *args, **kwargs)
    return str(info.value)


# ------------------------------------------------------------------ taken, as int64
@pytest.mark.parametrize("labels", [
    torch.tensor([2, 0, 1], dtype=torch.int32),
    torch.tensor([2, 0, 1], dtype=torch.uint8),
    np.array([2, 0, 1], dtype=np.int16),
    [2, 0, 1],
    (2, 0, 1),
])
def test_integer_labels_of_any_form_come_back_as_int64(labels):
    checked = check_class_indices(labels, 3)
    assert checked.dtype == torch.int64 and checked.tolist() == [2, 0, 1]


def test_int64_labels_come_back_as_they_are():
    labels = torch.tensor([2, 0, 1])
    assert check_class_indices(labels, 3) is labels  # no copy on the fast path


def test_no_labels_are_int64_even_from_an_empty_list():
    for empty in ([], torch.empty(0, dtype=torch.long)):
        checked = check_class_indices(empty, 3)
        assert checked.dtype == torch.int64 and checked.shape == (0,)


def test_without_num_classes_any_label_from_0_up_is_taken():
    assert check_class_indices(torch.tensor([0, 10**6]), None).tolist() == [0, 10**6]


# ------------------------------------------------------------------ dtypes
def test_float_labels_are_refused_rather_than_rounded():
    message = refusal(torch.tensor([0.0, 1.0]), 3)
    assert "labels must be integer class indices, got dtype torch.float32" in message
    assert "refused rather than rounded: use labels.long() if they are whole" in message


def test_whole_floats_are_taken_when_asked_and_others_are_named():
    checked = check_class_indices(np.array([0.0, 2.0, 1.0]), 3, whole_floats=True)
    assert checked.dtype == torch.int64 and checked.tolist() == [0, 2, 1]
    for bad, shown in ((0.5, "[0.5]"), (float("nan"), "[nan]"), (float("inf"), "[inf]")):
        message = refusal(torch.tensor([0.0, bad, 1.0]), 3, whole_floats=True)
        assert message.startswith(f"labels must be whole numbers, class indices; got non-integer float labels "
                                  f"such as {shown}"), message
    # Whole floats are then checked like ints: the range still holds.
    assert "labels [3] are outside [0, 2]" in refusal(torch.tensor([0.0, 3.0]), 3, whole_floats=True)


def test_a_bool_mask_is_not_taken_as_classes_0_and_1():
    message = refusal(torch.tensor([True, False]), 3)
    assert "labels must be integer class indices, got dtype torch.bool" in message
    assert "a mask is not class indices" in message and "labels.long()" in message


def test_complex_labels_are_refused():
    assert "got dtype torch.complex64" in refusal(torch.tensor([1 + 0j, 2 + 0j]), 3)


# ------------------------------------------------------------------ shapes
def test_one_hot_labels_are_told_to_argmax():
    message = refusal(torch.eye(3)[[0, 2, 1]], 3)  # float one-hot: the shape is named, not the dtype
    assert message == ("labels must be 1-D, one class index per image, got shape (3, 3); one-hot labels? "
                       "pass labels.argmax(1)")


def test_other_shapes_are_told_how_to_flatten():
    assert refusal(torch.zeros(4, 1, dtype=torch.long), 3).endswith("got shape (4, 1); pass labels.reshape(-1) "
                                                                     "to flatten them")
    assert "for one image pass labels.reshape(1)" in refusal(torch.tensor(1), 3)
    # Five columns are no one-hot encoding of three classes.
    assert "argmax" not in refusal(torch.zeros(4, 5, dtype=torch.long), 3)


# ------------------------------------------------------------------ values
def test_labels_above_the_classes_name_the_values_the_range_and_the_fix():
    message = refusal(torch.arange(10), 3, classes="the teacher gives 3 classes", fix="use its classes")
    assert message == "labels [3, 4, 5, ..., 9] are outside [0, 2]: the teacher gives 3 classes; use its classes"
    assert refusal([0, 3], 3) == ("labels [3] are outside [0, 2]: there are 3 classes; pass class indices 0..2, "
                                  "or remap the labels to them")


def test_a_fix_given_as_a_function_gets_the_refused_values():
    seen = []
    message = refusal(torch.tensor([4, 0, 7, 4]), 3, fix=lambda bad: seen.append(bad) or f"build it for {max(bad) + 1}")
    assert seen == [[4, 7]] and message.endswith("; build it for 8")


def test_message_parts_given_as_functions_are_not_called_for_good_labels():
    def never(*args):
        raise AssertionError("a message was built for good labels")

    check_class_indices(torch.tensor([0, 2]), 3, classes=never, fix=never, hint=never)


def test_negative_labels_get_the_shared_fix_with_or_without_num_classes():
    message = refusal(torch.tensor([0, -1, 5]), 3, fix="never shown for negative labels")
    assert message.startswith("labels [-1, 5] are outside [0, 2]: there are 3 classes; class indices start at 0: "
                              "drop the rows labelled [-1] (e.g. unlabelled ones) or remap the labels to [0, 2]")
    assert "never shown" not in message
    message = refusal(np.array([0, -1, -3, 2]), None)
    assert message.startswith("labels [-3, -1] are negative: class indices start at 0 (labels must be >= 0); drop "
                              "the rows labelled [-3, -1]")


def test_what_names_the_argument():
    assert refusal(torch.tensor([5]), 3, what="targets").startswith("targets [5] are outside [0, 2]")
    assert refusal(torch.tensor([0.5]), 3, what="targets").startswith("targets must be integer class indices")


# ------------------------------------------------------------------ names and unreadable values
@pytest.mark.parametrize("labels", [["cat", "dog"], np.array(["cat", "dog"]), "cat"])
def test_class_names_are_told_to_be_mapped_to_indices(labels):
    message = refusal(labels, 3)
    assert message.startswith("labels must be class indices, got the "), message
    assert "which torch cannot read" in message
    assert "class names? map them to class indices first (e.g. class_names.index(name))" in message


def test_other_unreadable_labels_are_told_the_accepted_form():
    message = refusal([0, None], 3)
    assert "torch cannot read" in message and "pass a 1-D integer tensor or array, one class index per image" in message


def test_the_hint_joins_refusals_of_the_form_but_not_of_the_values():
    hint = "labels take class indices or class names"
    for bad_form in (["cat"], torch.eye(3), torch.tensor([0.5])):
        assert refusal(bad_form, 3, hint=hint).endswith("; " + hint)
    assert hint not in refusal(torch.tensor([3]), 3, hint=hint)


# ------------------------------------------------------------------ where the values are read
def test_range_check_none_checks_the_form_only():
    assert check_class_indices(torch.tensor([-1, 9]), 3, range_check="none").tolist() == [-1, 9]
    with pytest.raises(DataError, match="got dtype torch.float32"):
        check_class_indices(torch.tensor([0.0]), 3, range_check="none")


@pytest.mark.parametrize("range_check", ["cpu", "assert"])
def test_labels_on_the_cpu_are_always_range_checked(range_check):
    # Reading CPU labels costs no device sync, so only "none" skips them.
    assert "labels [3] are outside [0, 2]" in refusal(torch.tensor([0, 3]), 3, range_check=range_check)


def test_off_the_cpu_range_check_cpu_reads_no_values():
    # A meta tensor has no values: any host read (bool(), .item(), .tolist()) raises, so passing
    # proves the check read none, while its form is still checked.
    labels = torch.tensor([0, 7], device="meta")
    checked = check_class_indices(labels, 3, range_check="cpu")
    assert checked.device.type == "meta" and checked.dtype == torch.int64
    with pytest.raises(DataError, match="got dtype torch.float32"):
        check_class_indices(torch.zeros(2, device="meta"), 3, range_check="cpu")
    with pytest.raises(RuntimeError, match="meta"):  # the default reads the values: the probe works
        check_class_indices(labels, 3)


def test_off_the_cpu_range_check_assert_queues_a_device_assert_and_reads_no_values(monkeypatch):
    asserted = []
    monkeypatch.setattr(torch, "_assert_async", lambda condition, message: asserted.append((condition, message)))
    labels = torch.tensor([0, 7], dtype=torch.int32, device="meta")
    checked = check_class_indices(labels, 3, range_check="assert")
    assert checked.dtype == torch.int64 and checked.device.type == "meta"
    [(condition, message)] = asserted
    assert condition.device.type == "meta" and condition.dtype == torch.bool and condition.ndim == 0
    assert message == "labels must be class indices >= 0, < 3"


def test_the_sync_check_reads_the_values_once(monkeypatch):
    # One reduction read back per call, not one per label.
    reads = []
    original = torch.Tensor.__bool__
    monkeypatch.setattr(torch.Tensor, "__bool__", lambda self: reads.append(self.numel()) or original(self))
    check_class_indices(torch.arange(1000) % 3, 3)
    assert reads == [1]


def test_shown_values_are_sorted_distinct_and_short():
    assert shown_values([3, 1, 3]) == "[1, 3]"
    assert shown_values(range(20, 0, -1)) == "[1, 2, 3, ..., 20]"
    assert shown_values([-1, 7, 3, 5, 2, 0]) == "[-1, 0, 2, 3, 5, 7]"  # six are all shown


def test_one_label_per_image_names_the_data_and_the_fix(tmp_path):
    from augmentgen.data import load_data

    check_one_label_per_image(torch.zeros(3, 1, 4, 4), torch.zeros(3))  # as long: nothing to say
    with pytest.raises(DataError, match=r"^vary: 3 images but 2 labels; give one class index per image"):
        check_one_label_per_image(torch.zeros(3, 1, 4, 4), torch.zeros(2), what="vary")
    np.savez(tmp_path / "short.npz", images=np.zeros((4, 28, 28), np.uint8), labels=[0, 1, 0])
    with pytest.raises(DataError, match=rf"^{tmp_path / 'short.npz'}: 4 images but 3 labels; .*labels\[i\]"):
        load_data(tmp_path / "short.npz")
