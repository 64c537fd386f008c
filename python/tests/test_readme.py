"""The README's examples run as written: its Python blocks in order, in one namespace, in a
fresh directory; then every `gradcheck` command of its sh blocks there, on the files the
Python blocks saved. A README example that fails is a bug."""

import re
import shlex
import subprocess

from helpers import ROOT, binary

README = (ROOT / "README.md").read_text()


def blocks(language):
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def test_the_readme_has_examples_to_run():
    assert len(blocks("python")) >= 4 and len(blocks("sh")) >= 2


def test_the_readmes_python_and_command_line_examples_run(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    namespace = {}
    for code in blocks("python"):
        exec(compile(code, "README.md", "exec"), namespace)
    printed = capsys.readouterr().out
    assert "a constant factor: grad = 2.0000 × gradapprox" in printed, printed
    commands = [line.split("#")[0].strip() for code in blocks("sh")
                for line in code.splitlines() if line.startswith("gradcheck")]
    assert commands
    for command in commands:
        args = shlex.split(command)[1:]
        out = subprocess.run([binary(), *args], capture_output=True, text=True)
        assert out.returncode in (0, 1, 3), f"{command}: {out.stdout}{out.stderr}"
