"""Tiny random-weight SD-1.x-shaped base models built in code (tests, benchmarks, smoke runs).

Random weights paint noise: these prove the plumbing and measure overheads, never a look.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Callable

from machinima.tinymodels import tiny_unet_vae

CROSS_DIM = 32


def _byte_chars() -> list[str]:
    """GPT-2/CLIP's byte -> printable character table."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\xa1"), ord("\xac") + 1)) + list(range(ord("\xae"), ord("\xff") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for c in cs]


def save_tiny_text_encoder(folder: str | Path, hidden: int = CROSS_DIM, seed: int = 0) -> None:
    """A 2-layer random CLIP text encoder and a byte-level CLIP tokenizer (no merges) built in code,
    saved as text_encoder/ and tokenizer/."""
    import tempfile

    import torch
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    folder = Path(folder)
    chars = _byte_chars()
    vocab = {c: i for i, c in enumerate(chars)}
    for c in chars:
        vocab[c + "</w>"] = len(vocab)
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    with tempfile.TemporaryDirectory() as td:
        (Path(td) / "vocab.json").write_text(json.dumps(vocab))
        (Path(td) / "merges.txt").write_text("#version: 0.2\n")
        tok = CLIPTokenizer(str(Path(td) / "vocab.json"), str(Path(td) / "merges.txt"), model_max_length=77)
        tok.save_pretrained(str(folder / "tokenizer"))
    torch.manual_seed(seed)
    te = CLIPTextModel(CLIPTextConfig(vocab_size=len(vocab), hidden_size=hidden, intermediate_size=37, num_hidden_layers=2,
                                      num_attention_heads=4, max_position_embeddings=77, bos_token_id=len(vocab) - 2,
                                      eos_token_id=len(vocab) - 1, pad_token_id=len(vocab) - 1))
    te.save_pretrained(str(folder / "text_encoder"))


def save_base(folder: str | Path, unet: Any, vae: Any, *, text_encoder: bool = False) -> Path:
    """A diffusers folder (model_index.json, unet/, vae/, scheduler/), with a tiny random CLIP
    text encoder + tokenizer when ``text_encoder``."""
    from diffusers import DDPMScheduler

    folder = Path(folder)
    unet.save_pretrained(str(folder / "unet"))
    vae.save_pretrained(str(folder / "vae"))
    DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, clip_sample=False, steps_offset=1).save_pretrained(str(folder / "scheduler"))
    (folder / "model_index.json").write_text(json.dumps({
        "_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.42.1",
        "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"],
        "scheduler": ["diffusers", "DDPMScheduler"],
        "text_encoder": ["transformers", "CLIPTextModel"] if text_encoder else [None, None],
        "tokenizer": ["transformers", "CLIPTokenizer"] if text_encoder else [None, None],
        "safety_checker": [None, None], "feature_extractor": [None, None]}))
    if text_encoder:
        save_tiny_text_encoder(folder, hidden=unet.config.cross_attention_dim)
    return folder


def tiny_base(folder: str | Path, seed: int = 0, *, text_encoder: bool = False) -> Path:
    return save_base(folder, *tiny_unet_vae(seed), text_encoder=text_encoder)


def hash_embedder(dim: int = CROSS_DIM, length: int = 8) -> Callable[[str], Any]:
    """Deterministic stand-in prompt embeddings: a prompt's hash seeds them."""
    import torch

    def embed(text: str):
        seed = int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)
        return torch.randn(1, length, dim, generator=torch.Generator().manual_seed(seed))

    return embed
