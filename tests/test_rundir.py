"""The run directory's owner: file names, config.json, metrics.jsonl, and what log.txt says of a run."""

from __future__ import annotations

import json
import signal
import time

from cli_helpers import TINY, finish, run_cli, wgan_process
from wgan import checkpoint as ckpt
from wgan import rundir


def test_next_run_dir_numbers_runs_one_past_the_highest(tmp_path):
    first = rundir.next_run_dir(tmp_path, "quick")
    (tmp_path / "00007-other").mkdir()
    (tmp_path / "notes").mkdir()
    assert first.name == "00000-quick" and rundir.next_run_dir(tmp_path, "quick").name == "00008-quick"
    assert [p.name for p in rundir.numbered_runs(tmp_path)] == ["00008-quick", "00007-other", "00000-quick"]


def test_records_are_appended_read_back_and_cut_at_a_step(tmp_path):
    losses = {"loss_critic": 0.5, "loss_generator": 0.1, "wasserstein": 0.4}
    (tmp_path / rundir.METRICS).write_text(json.dumps({"step": 1, **losses}) + '\n{"step": 2, "fc\n')  # cut by a kill
    rundir.append_record(tmp_path, {"step": 3, "fcd": 9.0})
    rundir.append_record(tmp_path, {"step": 4, **losses})
    assert [r["step"] for r in rundir.read_records(tmp_path)] == [1, 3, 4]
    assert [rundir.is_training_record(r) for r in rundir.read_records(tmp_path)] == [True, False, True]
    rundir.keep_records_until(tmp_path, 3)
    assert [r["step"] for r in rundir.read_records(tmp_path)] == [1, 3]


def test_run_status_follows_a_run_through_stops_and_resumes(tmp_path, fashion_idx_dir):
    """The status is read from the sentences the trainer itself writes: finished, stopped by a signal,
    resumed and still training, resumed and killed, finished again."""
    code, _, err = run_cli("train", *TINY, "--data", fashion_idx_dir, "--runs-dir", tmp_path / "runs", "--steps", "2",
                           "--checkpoint-every-steps", "1")
    assert code == 0, err
    (run,) = (tmp_path / "runs").iterdir()
    assert rundir.run_status(run) == "finished"

    def resumed_and_training(steps: int):
        proc = wgan_process("train", "--resume", run, "--steps", steps)
        deadline = time.monotonic() + 120
        while (run / rundir.LOG).read_text().count(rundir.RESUMED) < resumes + 1:
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.poll() else ""
            time.sleep(0.1)
        return proc

    resumes = 0
    proc = resumed_and_training(100000)
    resumes += 1
    assert rundir.run_status(run) == "in progress, or killed"
    proc.send_signal(signal.SIGTERM)
    code, _, err = finish(proc)
    assert code == 128 + signal.SIGTERM, err
    assert rundir.run_status(run) == "stopped (resumable)"

    proc = resumed_and_training(100000)
    resumes += 1
    assert rundir.run_status(run) == "in progress, or killed"
    proc.kill()
    proc.wait()
    assert rundir.run_status(run) == "in progress, or killed"

    newest = ckpt.checkpoint_step(ckpt.list_checkpoints(run / rundir.CHECKPOINTS)[-1])
    code, _, err = run_cli("train", "--resume", run, "--steps", newest + 2)
    assert code == 0, err
    assert rundir.run_status(run) == "finished"


def test_run_status_reads_sentences_not_words_anywhere_in_a_line(tmp_path):
    log = tmp_path / rundir.LOG
    log.write_text("2026-01-01 10:00:00 started: preset=quick dataset=image-folder (8 samples from /data/finished at step)\n"
                   "2026-01-01 10:00:01 note: /data/diverged: a folder name\n")
    assert rundir.run_status(tmp_path) == "in progress, or killed"
    with log.open("a") as f:
        f.write("2026-01-01 10:00:02 stopped: could not write /runs/x at step 4 (No space left on device); ...\n")
    assert rundir.run_status(tmp_path) == "stopped: a write failed (resumable)"
    assert rundir.run_status(tmp_path / "missing") == "unknown (no log.txt)"


def test_quality_summary_puts_an_evaluation_in_one_line():
    fields = {"fcd": 257.83, "class_coverage": 0.97712, "classes_covered": 10, "eval_s": 18.5, "fcd_raw": 242.61,
              "samples": {"fcd": 10000, "class_coverage": 10000, "fcd_raw": 10000}}
    assert rundir.quality_summary(fields) == ("fcd 257.8 (raw generator 242.6) | class_coverage 0.9771 | "
                                              "classes_covered 10 (10000 samples)")
    assert rundir.quality_summary({"fcd": 1.5}) == "fcd 1.5"


def test_folders_numbered_in_other_digits_are_no_runs(tmp_path):
    for name in ("²²²²²-x", "٣٣٣٣٣-y", "00002-z"):  # superscripts are digits to str.isdigit, Arabic-Indic to re's \d
        (tmp_path / name).mkdir()
    assert rundir.next_run_dir(tmp_path, "quick").name == "00003-quick"
    assert [p.name for p in rundir.numbered_runs(tmp_path)] == ["00003-quick", "00002-z"]
    assert ckpt.find_resumable_run(tmp_path, {}) is None  # --resume auto looks through them without a stumble
