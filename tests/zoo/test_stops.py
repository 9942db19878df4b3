"""zoo.stops: the small pieces that end or pause training between steps."""

from __future__ import annotations

import os
import signal

import pytest
import torch

from zoo.stops import CheckpointEvery, NonFiniteLoss, check_finite, ctrl_c


def test_checkpoint_every_n_steps_but_never_on_an_epochs_last_step() -> None:
    every = CheckpointEvery(5)
    due = [step for step in range(1, 21) if every.due(step, (step - 1) % 10 + 1, 10)]
    assert due == [5, 15]  # 10 and 20 end their epochs: the epoch end writes those
    assert not any(CheckpointEvery(None).due(step, step, 100) for step in range(1, 50))


def test_a_non_finite_loss_stops_before_the_step() -> None:
    check_finite(torch.tensor(2.3), 0)
    for value in (float("nan"), float("inf"), -float("inf")):
        with pytest.raises(NonFiniteLoss) as raised:
            check_finite(torch.tensor(value), 7)
        assert raised.value.batch == 7 and raised.value.exit_code == 3


def test_ctrl_c_asks_once_then_stops_at_once() -> None:
    before = signal.getsignal(signal.SIGINT)  # ignored, when the suite itself runs in the background
    with ctrl_c() as stop:
        os.kill(os.getpid(), signal.SIGINT)
        assert stop.is_set()  # the first asks the loop to stop at the next step
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is before  # as it was
    with ctrl_c(enabled=False) as stop:  # a job of several processes: torchrun stops them
        assert signal.getsignal(signal.SIGINT) is before and not stop.is_set()


@pytest.mark.parametrize(("sent", "code"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_sigterm_and_sighup_ask_as_ctrl_c_does_and_say_which(sent: int, code: int) -> None:
    before = signal.getsignal(sent)
    with ctrl_c() as stop:
        os.kill(os.getpid(), sent)
        assert stop.is_set() and stop.reason == signal.Signals(sent).name
        interrupted = stop.interrupted("after step 3 of epoch 1.")
        assert str(interrupted) == f"Interrupted ({signal.Signals(sent).name}) after step 3 of epoch 1." and interrupted.exit_code == code
    assert signal.getsignal(sent) is before


def test_ctrl_c_while_the_curves_are_drawn_says_the_run_is_complete(tiny_data, tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    import zoo
    import zoo.plots
    from zoo.stops import Interrupted

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(zoo.plots, "write_curves", interrupted)
    with pytest.raises(Interrupted, match=r"while drawing curves.png; the run itself is complete") as raised:
        zoo.run(dataset="mnist", model="mlp-8", epochs=1, out=tmp_path / "run", reporters=[],
                sets=[f"dataset.data_dir={json.dumps(str(tiny_data))}", "dataset.verify=false"])
    assert raised.value.exit_code == 130 and (tmp_path / "run" / "model.safetensors").is_file()
    assert len((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()) == 1


def test_an_ignored_signal_stays_ignored_and_only_a_second_ctrl_c_stops_at_once() -> None:
    """`nohup zoo run` must survive its terminal; a terminal's or a queue's second signal only repeats the first."""
    before = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        with ctrl_c() as stop:
            assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
            os.kill(os.getpid(), signal.SIGHUP)
            assert not stop.is_set()
            os.kill(os.getpid(), signal.SIGTERM)
            os.kill(os.getpid(), signal.SIGTERM)  # a second TERM: still a clean stop at the next step
            assert stop.is_set() and stop.reason == "SIGTERM"
            with pytest.raises(KeyboardInterrupt):
                os.kill(os.getpid(), signal.SIGINT)
    finally:
        signal.signal(signal.SIGHUP, before)


def test_a_second_ctrl_c_while_a_checkpoint_is_written_waits_for_it(tmp_path) -> None:
    """Pressing Stop twice quickly lost the run: the second Ctrl-C cut the first checkpoint short."""
    from zoo.errors import Interrupted

    written = []
    with ctrl_c() as stop:
        os.kill(os.getpid(), signal.SIGINT)
        with pytest.raises(Interrupted, match=r"Interrupted \(Ctrl-C, twice\) while a checkpoint was written, which was finished first"):
            with stop.saving_checkpoint(tmp_path):
                os.kill(os.getpid(), signal.SIGINT)  # arrives mid-write
                written.append("checkpoint")  # the write goes on
        assert written == ["checkpoint"]


def test_the_stop_ends_a_notebook_loop_that_skips_failing_settings(tiny_data, tmp_path) -> None:
    """`except zoo.ZooError` around each run skips bad settings; Ctrl-C (the notebook's Stop) must still end the loop."""
    import zoo
    from helpers import tiny_sets
    from zoo.plugins import load_catalog

    class Stopper(zoo.Reporter):
        def on_epoch_start(self, epoch):
            os.kill(os.getpid(), signal.SIGINT)

    class Plugin:
        @zoo.hookimpl
        def register_reporters(self, register):
            register("stopper", lambda params: Stopper())

    catalog = load_catalog(extra_plugins=[("stopper", Plugin())])
    tried = []
    with pytest.raises(zoo.Interrupted, match=r"Interrupted \(Ctrl-C\) after step 1 of epoch 1\. A checkpoint is in") as stop:
        for lr in (0.01, 0.1):
            tried.append(lr)
            try:
                zoo.run(catalog=catalog, dataset="mnist", model="mlp-8", epochs=1, reporters=["stopper"], out=tmp_path / str(lr),
                        sets=[*tiny_sets(tiny_data), f"optimizer.lr={lr}"])
            except zoo.ZooError:
                continue
    assert tried == [0.01]
    assert stop.value.run_dir == tmp_path / "0.01" and str(stop.value).endswith(f"continue with zoo.run(resume='{tmp_path / '0.01'}').")
