"""Tiny, randomly initialised FunASR models of the real architectures, for tests and benchmarks.

This is the one documented exception to "only transcription/engines/funasr.py imports funasr/torch":
it is a developer tool (the `build_test_model` command, the fixture training script and the tests),
never imported by the web or worker code paths, and it imports funasr/torch only inside functions,
so importing this module stays cheap. Its output directories load offline with funasr's AutoModel
exactly like a downloaded model (config.yaml, configuration.json, model.pt, tokenizer, am.mvn).
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np

KINDS = ("sensevoice", "paraformer", "seaco", "paraformer_streaming", "campplus", "fsmn_vad")

SENSEVOICE_TAGS = (
    "<|zh|>", "<|en|>", "<|yue|>", "<|ja|>", "<|ko|>", "<|nospeech|>",
    "<|HAPPY|>", "<|SAD|>", "<|ANGRY|>", "<|NEUTRAL|>", "<|EMO_UNKNOWN|>",
    "<|Speech|>", "<|BGM|>", "<|Laughter|>", "<|Applause|>", "<|Event_UNK|>",
    "<|withitn|>", "<|woitn|>",
)  # fmt: skip

DEFAULT_CORPUS = (
    "今天天气很好我们一起去公园散步吧",
    "欢迎使用我们的转写服务",
    "语音识别系统可以把说话的内容转换成文字",
    "你好世界",
    "hello and welcome to the transcription service",
    "this is a short test of automatic speech recognition",
    "the quick brown fox jumps over the lazy dog",
)

FEATURE_DIM = 560  # 80 mel bins x lfr_m 7
_FRONTEND = {
    "fs": 16000,
    "window": "hamming",
    "n_mels": 80,
    "frame_length": 25,
    "frame_shift": 10,
    "lfr_m": 7,
    "lfr_n": 6,
    "dither": 0.0,
}


def _sensevoice_config(dim: int, blocks: int, units: int, heads: int = 2, tp_blocks: int = 1) -> dict:
    return {
        "model": "SenseVoiceSmall",
        "model_conf": {"length_normalized_loss": True, "sos": 1, "eos": 2, "ignore_id": -1},
        "encoder": "SenseVoiceEncoderSmall",
        "encoder_conf": {
            "output_size": dim,
            "attention_heads": heads,
            "linear_units": units,
            "num_blocks": blocks,
            "tp_blocks": tp_blocks,
            "dropout_rate": 0.0,
            "positional_dropout_rate": 0.0,
            "attention_dropout_rate": 0.0,
            "input_layer": "pe",
            "pos_enc_class": "SinusoidalPositionEncoder",
            "normalize_before": True,
            "kernel_size": 11,
            "sanm_shfit": 0,
            "selfattention_layer_type": "sanm",
        },
        "tokenizer": "SentencepiecesTokenizer",
        "tokenizer_conf": {"bpemodel": None, "unk_symbol": "<unk>", "split_with_space": True},
        "frontend": "WavFrontend",
        "frontend_conf": {**_FRONTEND, "cmvn_file": None},
    }


def _paraformer_config(dim: int, blocks: int, units: int, *, seaco: bool, vocab: int) -> dict:
    sanm = {
        "attention_heads": 2,
        "linear_units": units,
        "dropout_rate": 0.0,
        "positional_dropout_rate": 0.0,
        "kernel_size": 11,
        "sanm_shfit": 0,
    }
    config = {
        "model": "SeacoParaformer" if seaco else "Paraformer",
        "model_conf": {
            "ctc_weight": 0.0,
            "lsm_weight": 0.1,
            "length_normalized_loss": True,
            "predictor_weight": 1.0,
            "predictor_bias": 1,
            "sampling_ratio": 0.75,
        },
        "encoder": "SANMEncoder",
        "encoder_conf": {
            **sanm,
            "output_size": dim,
            "num_blocks": blocks,
            "attention_dropout_rate": 0.0,
            "input_layer": "pe",
            "pos_enc_class": "SinusoidalPositionEncoder",
            "normalize_before": True,
            "selfattention_layer_type": "sanm",
        },
        "decoder": "ParaformerSANMDecoder",
        "decoder_conf": {
            **sanm,
            "num_blocks": blocks,
            "att_layer_num": blocks,
            "self_attention_dropout_rate": 0.0,
            "src_attention_dropout_rate": 0.0,
        },
        "predictor": "CifPredictorV3" if seaco else "CifPredictorV2",
        "predictor_conf": {"idim": dim, "threshold": 1.0, "l_order": 1, "r_order": 1, "tail_threshold": 0.45},
        "tokenizer": "CharTokenizer",
        "tokenizer_conf": {"unk_symbol": "<unk>", "split_with_space": True, "token_list": None, "seg_dict": None},
        "frontend": "WavFrontend",
        "frontend_conf": {**_FRONTEND, "cmvn_file": None},
    }
    if seaco:
        config["model_conf"].update(
            {"inner_dim": dim, "bias_encoder_type": "lstm", "NO_BIAS": vocab - 2, "seaco_lsm_weight": 0.0}
        )
        config["seaco_decoder"] = "ParaformerSANMDecoder"
        config["seaco_decoder_conf"] = {
            **sanm,
            "kernel_size": 21,
            "num_blocks": 1,
            "att_layer_num": 1,
            "self_attention_dropout_rate": 0.0,
            "src_attention_dropout_rate": 0.0,
            "use_output_layer": False,
            "wo_input_layer": True,
        }
        config["predictor_conf"].update(
            {"upsample_type": "cnn_blstm", "upsample_times": 3, "use_cif1_cnn": False, "smooth_factor2": 0.25}
        )
    return config


# CAM++ (speaker embeddings): the dense TDNN blocks are fixed at 12/24/16 layers, only the widths shrink here.
CAMPPLUS_TINY = {"embedding_size": 64, "growth_rate": 8, "bn_size": 2, "init_channels": 32}
CAMPPLUS_FULL = {"embedding_size": 192, "growth_rate": 32, "bn_size": 4, "init_channels": 128}  # the real dims


def campplus_config(widths: dict) -> dict:
    """config.yaml of a CAM++ speaker model (no frontend, CMVN or tokenizer: it computes its own fbank)."""
    conf = {"feat_dim": 80, "config_str": "batchnorm-relu", "memory_efficient": True, "output_level": "segment"}
    return {"model": "CAMPPlus", "model_conf": {**conf, **widths}}


def _paraformer_streaming_config(dim: int, blocks: int, units: int, *, vocab: int) -> dict:
    """paraformer-zh-streaming's architecture (SANMEncoderChunkOpt, chunked SCAMA masks, WavFrontendOnline)."""
    config = _paraformer_config(dim, blocks, units, seaco=False, vocab=vocab)
    config["model"] = "ParaformerStreaming"
    config["model_conf"]["sampling_ratio"] = 0.75
    config["encoder"] = "SANMEncoderChunkOpt"
    config["encoder_conf"].update(
        {
            "input_layer": "pe_online",
            "pos_enc_class": "StreamSinusoidalPositionEncoder",
            "chunk_size": [12, 15],
            "stride": [8, 10],
            "pad_left": [0, 0],
            "encoder_att_look_back_factor": [4, 4],
            "decoder_att_look_back_factor": [1, 1],
        }
    )
    config["decoder_conf"]["sanm_shfit"] = 5
    config["frontend"] = "WavFrontendOnline"
    return config


def write_cmvn(path: Path, mean: np.ndarray, std: np.ndarray) -> None:
    """Write Kaldi nnet1 text CMVN (the am.mvn format WavFrontend reads)."""

    def values(arr: np.ndarray) -> str:
        return " ".join(f"{v:.6g}" for v in arr.tolist())

    dim = mean.shape[0]
    path.write_text(
        f"<Nnet>\n<Splice> {dim} {dim}\n[ 0 ]\n"
        f"<AddShift> {dim} {dim}\n<LearnRateCoef> 0 [ {values(-mean)} ]\n"
        f"<Rescale> {dim} {dim}\n<LearnRateCoef> 0 [ {values(1.0 / std)} ]\n</Nnet>\n"
    )


# The real SenseVoiceSmall (iic/SenseVoiceSmall): SenseVoiceEncoderSmall d 512, 4 heads, ff 2048, 50 + 20 blocks,
# a 25,055-piece vocabulary (the CTC output layer). Compute does not depend on the weights, so a random model with
# these dimensions costs what the real checkpoint costs (about 234 M parameters, model.pt about 0.9 GB).
FULL_SENSEVOICE = {"dim": 512, "heads": 4, "units": 2048, "blocks": 50, "tp_blocks": 20, "vocab": 25055}


def _train_sentencepiece(corpus: tuple[str, ...], target: Path, vocab: int = 0) -> None:
    """BPE over the corpus; `vocab` > 0 pads the vocabulary with filler pieces up to that size (full-size CTC)."""
    import sentencepiece as spm

    symbols = list(SENSEVOICE_TAGS)
    if vocab:
        symbols += [f"~{i}" for i in range(max(0, vocab - 200 - len(symbols)))]

    buffer = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus),
        model_writer=buffer,
        model_type="bpe",
        vocab_size=max(200, vocab),
        hard_vocab_limit=False,
        character_coverage=1.0,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        user_defined_symbols=symbols,
        normalization_rule_name="identity",
        add_dummy_prefix=False,
        num_threads=1,
        minloglevel=2,
    )
    target.write_bytes(buffer.getvalue())


def _char_tokens(corpus: tuple[str, ...]) -> list[str]:
    tokens: list[str] = []
    for line in corpus:
        for word in line.split():
            units = [word] if word.isascii() else list(word)
            for unit in units:
                if unit not in tokens:
                    tokens.append(unit)
    return ["<blank>", "<s>", "</s>", *tokens, "<unk>"]


def _write_yaml(path: Path, config: dict) -> None:
    import yaml

    path.write_text(yaml.safe_dump(config, sort_keys=True, allow_unicode=True))


def build_test_model(
    directory: str | Path,
    *,
    kind: str = "sensevoice",
    seed: int = 0,
    corpus: tuple[str, ...] = DEFAULT_CORPUS,
    dim: int = 32,
    blocks: int = 2,
    units: int = 64,
    cmvn: tuple[np.ndarray, np.ndarray] | None = None,
    full: bool = False,
) -> Path:
    """Write a tiny random model of `kind` into `directory` and return it; identical bytes for a given seed.

    full=True (SenseVoice only): the real SenseVoiceSmall dimensions (FULL_SENSEVOICE), for benchmarks.
    """
    if kind not in KINDS:
        raise ValueError(f"Unknown kind {kind!r}; choose one of {', '.join(KINDS)}.")
    if full and kind != "sensevoice":
        raise ValueError("Only the sensevoice kind has a full-size variant.")
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    if kind == "campplus":
        return build_speaker_model(out, seed=seed)
    if kind == "fsmn_vad":  # real dims, trained for seconds into an energy VAD (transcription/testmodels_vad.py)
        from transcription.testmodels_vad import build_vad_model

        return build_vad_model(out, seed=seed)
    metas: dict = {"init_param": "model.pt", "config": "config.yaml", "frontend_conf": {"cmvn_file": "am.mvn"}}
    if kind == "sensevoice":
        f = FULL_SENSEVOICE if full else {}
        _train_sentencepiece(corpus, out / "tokenizer.bpe.model", vocab=f.get("vocab", 0))
        config = _sensevoice_config(
            f.get("dim", dim), f.get("blocks", blocks), f.get("units", units), f.get("heads", 2), f.get("tp_blocks", 1)
        )
        metas["tokenizer_conf"] = {"bpemodel": "tokenizer.bpe.model"}
    else:
        tokens = _char_tokens(corpus)
        (out / "tokens.json").write_text(json.dumps(tokens, ensure_ascii=False, indent=0))
        seg_lines = [f"{t} {t}" for t in tokens[3:-1]]
        (out / "seg_dict").write_text("\n".join(seg_lines) + "\n")
        if kind == "paraformer_streaming":
            config = _paraformer_streaming_config(dim, blocks, units, vocab=len(tokens))
        else:
            config = _paraformer_config(dim, blocks, units, seaco=kind == "seaco", vocab=len(tokens))
        metas["tokenizer_conf"] = {"token_list": "tokens.json", "seg_dict": "seg_dict"}
    if cmvn is None:
        # Typical log-mel levels of speech scaled to int16 range; real statistics are optional for random weights.
        cmvn = (np.full(FEATURE_DIM, 10.0), np.full(FEATURE_DIM, 3.0))
    write_cmvn(out / "am.mvn", *cmvn)
    _write_yaml(out / "config.yaml", config)
    (out / "configuration.json").write_text(
        json.dumps(
            {
                "framework": "pytorch",
                "task": "auto-speech-recognition",
                "model": {"type": "funasr"},
                "file_path_metas": metas,
            },
            indent=2,
            sort_keys=True,
        )
        + "\n"
    )
    model = build_model_object(out, seed=seed)
    randomize_(model, seed=seed)
    save_weights(model, out / "model.pt")
    return out


def build_speaker_model(directory: str | Path, *, seed: int = 0, full: bool = False) -> Path:
    """A CAM++ speaker-embedding model with the classes' own seeded init (`full`: the real 6.9 M-parameter dims)."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    _write_yaml(out / "config.yaml", campplus_config(CAMPPLUS_FULL if full else CAMPPLUS_TINY))
    metas = {"init_param": "model.pt", "config": "config.yaml"}
    configuration = {"framework": "pytorch", "task": "speaker-verification", "model": {"type": "funasr"}}
    configuration["file_path_metas"] = metas
    (out / "configuration.json").write_text(json.dumps(configuration, indent=2, sort_keys=True) + "\n")
    save_weights(build_model_object(out, seed=seed), out / "model.pt")
    return out


def _import_funasr():
    from transcription.engines.funasr import import_funasr

    return import_funasr()


def build_model_object(directory: Path, *, seed: int = 0):
    """The nn.Module described by directory/config.yaml, built offline without loading model.pt."""
    import yaml

    auto_model = _import_funasr()
    config = yaml.safe_load((directory / "config.yaml").read_text())
    metas = json.loads((directory / "configuration.json").read_text())["file_path_metas"]
    for section in ("tokenizer_conf", "frontend_conf"):
        for key, name in metas.get(section, {}).items():
            config.setdefault(section, {})[key] = str(directory / name)
    config.setdefault("model_conf", {})
    model, _ = auto_model.build_model(**config, device="cpu", seed=seed, ncpu=1, disable_update=True)
    return model


def randomize_(model, *, seed: int) -> None:
    """Overwrite every weight matrix with scaled Gaussian noise from a seeded generator (deterministic)."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _name, param in sorted(model.named_parameters()):
            if param.dim() >= 2:
                fan_in = int(np.prod(param.shape[1:]))
                param.copy_(torch.randn(param.shape, generator=generator) / float(np.sqrt(fan_in)))


def save_weights(model, path: Path) -> None:
    import torch

    state = {k: v.detach().cpu().contiguous() for k, v in sorted(model.state_dict().items())}
    torch.save(state, str(path))
