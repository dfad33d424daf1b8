"""frpo.stages.quiet: everything a library prints during a run lands in the run's log file, and
everything is back in place afterwards."""

from __future__ import annotations

import io
import logging
import os
import sys
import warnings

import pytest

from frpo.stages.quiet import display_text, library_output


def _noise(logger: logging.Logger) -> None:
    print("print to stdout")
    sys.stderr.write("Loading weights: 100%|#####| 20/20\n")
    warnings.warn("a deprecation", FutureWarning, stacklevel=1)
    logger.warning("a library log record")
    os.write(2, b"written to file descriptor 2\n")
    os.write(1, b"written to file descriptor 1\n")


def test_everything_goes_to_the_file_and_comes_back(tmp_path, capfd):
    stream = io.StringIO()
    logger = logging.getLogger("frpo_test_quiet_lib")
    handler = logging.StreamHandler(stream)
    logger.addHandler(handler)
    try:
        log = tmp_path / "sub" / "run.log"
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            with library_output(log) as path:
                assert path == log
                _noise(logger)
        text = log.read_text()
        for line in (
            "print to stdout",
            "Loading weights: 100%",
            "FutureWarning: a deprecation",
            "a library log record",
            "written to file descriptor 2",
            "written to file descriptor 1",
        ):
            assert line in text
        out, err = capfd.readouterr()
        assert out == "" and err == ""
        assert stream.getvalue() == ""  # the handler's own stream saw nothing during the block
        # afterwards the handler writes where it did before, and stdout is stdout again
        logger.warning("after")
        print("after the block")
        assert stream.getvalue() == "after\n"
        assert "after the block" in capfd.readouterr().out
    finally:
        logger.removeHandler(handler)


def test_appends_and_restores_after_an_exception(tmp_path, capfd):
    log = tmp_path / "run.log"
    log.write_text("earlier\n")
    with pytest.raises(RuntimeError, match="boom"):
        with library_output(log):
            print("before the error")
            raise RuntimeError("boom")
    assert log.read_text() == "earlier\nbefore the error\n"
    print("visible")
    assert "visible" in capfd.readouterr().out


def test_a_handler_created_inside_the_block_is_pointed_back_out(tmp_path, capfd):
    logger = logging.getLogger("frpo_test_quiet_new")
    with library_output(tmp_path / "a.log"):
        handler = logging.StreamHandler()  # binds sys.stderr, which is the log file now
        logger.addHandler(handler)
        logger.warning("inside")
    try:
        # the file is closed; a second block and a plain call both still work
        with library_output(tmp_path / "b.log"):
            logger.warning("second block")
        assert "second block" in (tmp_path / "b.log").read_text()
        assert "inside" in (tmp_path / "a.log").read_text()
        capfd.readouterr()
        logger.warning("outside")
        assert "outside" in capfd.readouterr().err
    finally:
        logger.removeHandler(handler)


def test_progress_bars_are_off_inside_and_restored():
    import datasets
    from transformers.utils import logging as tlog

    assert tlog.is_progress_bar_enabled() and not datasets.are_progress_bars_disabled()
    with library_output(os.devnull):
        assert not tlog.is_progress_bar_enabled() and datasets.are_progress_bars_disabled()
    assert tlog.is_progress_bar_enabled() and not datasets.are_progress_bars_disabled()


def test_display_text_prefers_plain_text_then_strips_html():
    assert display_text({"text/plain": "a table"}) == "a table"
    html = "<div><progress value='3'></progress> [3/3 00:00]</div><table><td>1</td></table>"
    bundle = {"text/plain": "<IPython.core.display.HTML object>", "text/html": html}
    assert display_text(bundle) == "[3/3 00:00] 1"
