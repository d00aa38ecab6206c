"""What `pip install git+<repository>` gives a Colab user: the library, the autograder, the data."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile

from notebooks import CHAPTERS, ROOT


def test_wheel_carries_library_data_and_self_check(tmp_path):
    src = tmp_path / "src"  # a copy, so the build leaves nothing in the repository
    src.mkdir()
    for part in ["pyproject.toml", "README.md", "LICENSE", "buildgpt", "autograder", "datasets"]:
        (shutil.copytree if (ROOT / part).is_dir() else shutil.copyfile)(ROOT / part, src / part)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path), str(src)], check=True, capture_output=True)
    wheel = next(tmp_path.glob("buildgpt-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in ["buildgpt/resources.py", "buildgpt/datasets/tinyshakespeare.txt", "buildgpt/datasets/gpt2/vocab.bpe",
                 "buildgpt/datasets/gpt2/encoder.json", "autograder/chapter_tests.json", "autograder/nbgrader_config.py"]:
        assert name in names, f"the wheel lacks {name}"

    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    code = ("import buildgpt, autograder, autograder.selfcheck as s\n"
            "from buildgpt.resources import dataset_path, gpt2_encoding\n"
            f"assert '{site}' in buildgpt.__file__, buildgpt.__file__\n"
            "assert len(dataset_path('tinyshakespeare.txt').read_text()) > 1_000_000\n"
            "assert gpt2_encoding().encode('Hello, world') == [15496, 11, 995]\n"
            f"assert s.chapter_tests('{CHAPTERS[0].slug}')\n")
    env = dict(os.environ, PYTHONPATH=str(site))
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=tmp_path)
