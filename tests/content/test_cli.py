"""`appliance library add|list|rescan` as an operator runs them."""

import subprocess
import sys
from pathlib import Path


def run(cfg: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "appliance", "library", *args, "--config", str(cfg)],
                          capture_output=True, text=True, timeout=120, cwd=cfg.parent)


def test_add_list_rescan(tmp_path: Path, zim_dir: Path) -> None:
    cfg = tmp_path / "appliance.toml"
    cfg.write_text(f'[paths]\ndata_dir = "{tmp_path / "var"}"\ncontent_root = "{tmp_path / "content"}"\n')
    out = run(cfg, "add", str(zim_dir / "testbook.zim"))
    assert out.returncode == 0, out.stderr
    assert "added testbook.zim as testbook (ready)" in out.stdout
    assert (tmp_path / "content" / "zim" / "testbook.zim").read_bytes() == (zim_dir / "testbook.zim").read_bytes()
    assert run(cfg, "add", str(zim_dir / "testbook.zim")).returncode == 1  # already there
    bad = run(cfg, "add", str(zim_dir / "corrupt.zim"))
    assert bad.returncode == 1
    assert "corrupt (error)" in bad.stdout
    assert run(cfg, "add", str(cfg)).returncode == 2
    queued = run(cfg, "add", "https://download.example/wiki_en_all.zim")
    assert "queued import 1" in queued.stdout
    assert run(cfg, "add", "ftp://x/y.zim").returncode == 2
    (tmp_path / "content" / "zim" / "corrupt.zim").unlink()
    assert "'missing': ['corrupt']" in run(cfg, "rescan").stdout
    listing = run(cfg, "list").stdout
    assert "testbook" in listing
    assert "missing" in listing
