"""A training job that receives the preemption signal checkpoints, and its rerun resumes."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time

import torch

SCRIPT = textwrap.dedent("""
    import sys, time
    import lightning as L
    import torch
    from stitchwork.data import Digits
    from stitchwork.models import MLP
    from stitchwork.training import TrainRecipe, fit_classifier

    class Slow(L.Callback):
        def on_train_epoch_start(self, trainer, module):
            print("EPOCH", trainer.current_epoch, flush=True)
        def on_train_batch_end(self, *args):
            time.sleep(0.02)

    torch.manual_seed(0)
    data = Digits()
    model = MLP(data.input_shape, 10, depth=1, width=32)
    metrics = fit_classifier(model, data, TrainRecipe(epochs=12, lr=0.05), seed=0, checkpoint_dir=sys.argv[1],
                             trainer_options={"enable_progress_bar": False, "callbacks": [Slow()]})
    print("DONE resumed=%s acc=%.4f" % (metrics["resumed"], metrics["test_acc"]), flush=True)
""")


def test_signal_checkpoints_and_rerun_resumes(tmp_path):
    ckpt_dir = tmp_path / "ckpt"
    first = subprocess.Popen([sys.executable, "-c", SCRIPT, str(ckpt_dir)], stdout=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (ckpt_dir / "last.ckpt").exists():
        assert first.poll() is None and time.time() < deadline, "no checkpoint appeared"
        time.sleep(0.1)
    first.send_signal(signal.SIGUSR2)
    out, _ = first.communicate(timeout=120)
    assert first.returncode == -signal.SIGUSR2  # the default action ran after the checkpoint
    assert "DONE" not in out
    epochs_before = [int(line.split()[1]) for line in out.splitlines() if line.startswith("EPOCH")]
    saved = torch.load(ckpt_dir / "last.ckpt", map_location="cpu", weights_only=False)
    assert saved["global_step"] > 0 and len(epochs_before) < 12

    second = subprocess.run([sys.executable, "-c", SCRIPT, str(ckpt_dir)], capture_output=True, text=True,
                            timeout=300)
    assert second.returncode == 0, second.stderr
    epochs_after = [int(line.split()[1]) for line in second.stdout.splitlines() if line.startswith("EPOCH")]
    assert epochs_after[0] >= 1 and epochs_after[-1] == 11  # started where the first run stopped
    assert epochs_after[0] <= max(epochs_before) + 1
    assert "DONE resumed=True" in second.stdout
    assert not (ckpt_dir / "last.ckpt").exists()  # removed once training completed
