"""The entry points' quick exit (`focal_dist._cli.run`) keeps what a normal exit does
that a user can see: the status `main` returns or raises, the output of a thread still
running, what atexit handlers write, and buffered stdout and stderr. Each case runs in a
process of its own and is compared with the same program ending the interpreter's way."""

import subprocess
import sys
import textwrap

import pytest

PROGRAM = textwrap.dedent(
    """
    import atexit, sys, threading, time
    from pathlib import Path

    out = Path(sys.argv[1])

    def main(argv):
        del argv
        def late():
            time.sleep(0.3)
            (out / "thread").write_text("written")
        threading.Thread(target=late).start()
        atexit.register(lambda: (out / "atexit").write_text("ran"))
        sys.stdout.write("buffered out")
        sys.stderr.write("buffered err")
        return {result}

    if sys.argv[2] == "quick":
        from focal_dist import _cli
        _cli.run(main)
    else:
        from absl import app
        app.run(main, argv=sys.argv[:1])
    """
)


def _run(tmp_path, result, how):
    out = tmp_path / how
    out.mkdir()
    program = tmp_path / f"{how}.py"
    program.write_text(PROGRAM.format(result=result))
    done = subprocess.run(
        [sys.executable, str(program), str(out), how], capture_output=True, text=True, timeout=60
    )
    files = {p.name: p.read_text() for p in out.iterdir()}
    return done.returncode, done.stdout, done.stderr, files


@pytest.mark.parametrize("result", ["None", "0", "3", "'a message'"])
def test_the_quick_exit_ends_as_the_interpreter_does(tmp_path, result):
    quick = _run(tmp_path, result, "quick")
    normal = _run(tmp_path, result, "normal")
    assert quick == normal
    assert quick[3] == {"thread": "written", "atexit": "ran"}
    assert quick[1] == "buffered out"


def test_an_entry_point_run_by_another_program_returns_to_it(tmp_path):
    # A wrapper (bench/gpu_case.py, a notebook) runs the entry point with runpy and goes on
    # after it: the quick exit is only taken when the entry point is the program.
    out = tmp_path / "quick"
    out.mkdir()
    program = tmp_path / "quick.py"
    program.write_text(PROGRAM.format(result="3"))
    wrapper = tmp_path / "wrapper.py"
    wrapper.write_text(
        textwrap.dedent(
            f"""
            import runpy, sys
            from pathlib import Path
            sys.argv = [{str(program)!r}, {str(out)!r}, "quick"]
            try:
                runpy.run_path({str(program)!r}, run_name="__main__")
            except SystemExit as stop:
                Path({str(out / "after")!r}).write_text(f"status {{stop.code}}")
            """
        )
    )
    done = subprocess.run(
        [sys.executable, str(wrapper)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert (out / "after").read_text() == "status 3"
