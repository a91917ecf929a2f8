"""ref_model.py - NumPy float64 forward pass of llama, qwen2, qwen3, gpt2,
gemma2, gemma3, phi3, the mixture-of-experts llama (Mixtral), qwen2moe,
qwen3moe and gpt-oss.

The test oracle for cgpt's C forward pass. Written from the architecture
definitions (HF transformers LlamaForCausalLM / Qwen2 / Qwen3 / GPT2 /
Gemma2 / Gemma3 / Phi3 / Mixtral / Qwen2MoE / Qwen3MoE / GptOss and
llama.cpp's llm_build_* graphs, GGUF names and hparams), not from cgpt's C
code. Weights come from gguf_np (dequantized in NumPy); all arithmetic is
float64.

    m = RefModel(gguf_np.load(path))
    logits = m.forward([1, 2, 3])        # (T, n_vocab) float64
    ids, margins = m.greedy([1, 2, 3], 8)
    m = RefModel(g, n_ctx=4096)          # phi3 LongRoPE: the context asked for

act_quant=True models what ggml (and cgpt) do in a matmul with quantized
weights: the activation row is first quantized to the weight type's
vec_dot_type (Q8_0 for Q4_0/Q5_0/Q8_0/IQ4_NL/MXFP4, Q8_1 for Q4_1/Q5_1,
Q8_K for the K-quants and IQ4_XS; quantize_row_q8_*_ref in ggml-quants.c),
then the dot product is exact. Everything else stays float64. An expert of
a 3-D expert tensor is a weight of that tensor's type.

What the reference reads, per architecture
==========================================
Keys are "<arch>.<key>" (arch = general.architecture). Shapes: GGUF ne
first, then the NumPy shape gguf_np gives (ne reversed). E = n_embd,
H = head_count, KVH = head_count_kv, D = key_length (default E/H),
F = feed_forward_length, X = expert_count, Fx = expert FFN size,
V = n_vocab (rows of token_embd). Always: token_embd.weight [E,V] (V,E),
output_norm.weight [E], output.weight [E,V] (V,E) or, when absent, tied to
token_embd.weight. Per-layer names are "blk.N.<name>".

Common keys: embedding_length, block_count, attention.head_count,
attention.head_count_kv (default H), attention.key_length (default E/H),
context_length, attention.layer_norm_rms_epsilon, rope.freq_base (default
10000), rope.dimension_count (n_rot, default D). RoPE scaling keys, where an
architecture below says so: rope.scaling.type ("none" | "linear" | "yarn";
absent = linear as llama.cpp), rope.scaling.factor (freq_scale = 1/factor;
absent = 1; type none forces 1), rope.scaling.attn_factor (multiplies cos
and sin; default 1), rope.scaling.original_context_length (default
context_length), rope.scaling.yarn_beta_fast / yarn_beta_slow (default
32 / 1). ext_factor = 1 for yarn, else 0. As llama.cpp since PR 17945, the
cos/sin multiplier is attn_factor * (1 + 0.1 ln factor) for yarn with
factor > 1 (ggml's rope_yarn mscale), attn_factor otherwise.

llama / qwen2 / qwen3 (dense): attn_norm [E], attn_q [E,H*D], attn_k,
  attn_v [E,KVH*D], attn_output [H*D,E], ffn_norm [E], ffn_gate, ffn_up
  [E,F], ffn_down [F,E]; qwen2: attn_q/k/v.bias; qwen3: attn_q_norm,
  attn_k_norm [D]; llama: rope_freqs.weight [n_rot/2] (optional). RoPE:
  llama adjacent pairs (NORM), qwen* halves (NEOX). Plain RoPE (no scaling
  keys read; unchanged from the first version of this file).
llama with experts (Mixtral): a layer holding ffn_gate_inp.weight [E,X]
  (X,E) has, instead of ffn_gate/up/down, ffn_gate_exps, ffn_up_exps
  [E,Fx,X] (X,Fx,E) and ffn_down_exps [Fx,E,X] (X,E,Fx). Keys
  expert_count, expert_used_count (K). Router: softmax over the X logits,
  top K probabilities, renormalised to sum 1 (sum clamped below at
  6.103515625e-5 as llama.cpp), out = sum_k w_k down_k(silu(gate_k h) *
  up_k h).
qwen3moe: qwen3 attention (attn_q_norm/attn_k_norm), every layer MoE as
  Mixtral (renormalised); Fx from the tensors (expert_feed_forward_length).
qwen2moe: qwen2 attention (q/k/v biases), MoE as above WITHOUT
  renormalisation (weights = softmax probabilities of the K chosen), plus
  a shared expert: ffn_gate_shexp, ffn_up_shexp [E,Fs] (Fs,E),
  ffn_down_shexp [Fs,E] (E,Fs), ffn_gate_inp_shexp [E] (E,); added
  sigmoid(h . ffn_gate_inp_shexp) * down_s(silu(gate_s h) * up_s h).
  Expert sizes come from the tensor shapes (the *_feed_forward_length keys
  are not needed).
gemma2: x = token_embd[t] * sqrt(E). Per layer: h = rms(x, attn_norm);
  q, k, v = attn_q/k/v (no bias); NEOX RoPE (rope.freq_base, no scaling);
  q *= s; scores = c * tanh(q.k / c) with c = attn_logit_softcapping
  (default 50); causal mask plus, on sliding layers (il % 2 == 0), the
  window W = attention.sliding_window (default 4096): key t is masked for
  query p when p - t >= W; softmax; attn_output; then
  rms(., post_attention_norm) [E]; x += that. h = rms(x, ffn_norm);
  gelu_tanh(ffn_gate h) * ffn_up h; ffn_down; rms(., post_ffw_norm) [E];
  x += that. Logits = output_norm, output (tied), then
  cf * tanh(logits / cf), cf = final_logit_softcapping (default 30).
  s = attention.scale if that key is present; else llama.cpp's rule:
  1/sqrt(E // H) when block_count == 46 (27B), else 1/sqrt(D).
  Norm weights are used as stored (the converter already added 1).
gemma3: gemma2's layout plus attn_q_norm, attn_k_norm [D] (RMSNorm per
  head, before RoPE); no soft-capping anywhere; sliding layers are
  il % 6 < 5 when attention.sliding_window is present and > 0 (else no
  layer slides); sliding layers: RoPE base 10000, no scaling; the others:
  rope.freq_base with rope.scaling.type/factor (linear); s as gemma2 with
  the 27B rule at block_count == 62.
phi3: attn_norm [E]; attn_qkv [E,(H+2KVH)D] (rows q, k, v) or attn_q /
  attn_k / attn_v when attn_qkv is absent (biases .bias added when
  present); NEOX RoPE over n_rot dims with the LongRoPE factors
  rope_factors_long.weight / rope_factors_short.weight [n_rot/2] (global
  tensors, theta_i = p base^(-2i/n_rot) / factor_i): long when the
  RefModel's n_ctx > rope.scaling.original_context_length (default
  context_length), else short; cos, sin *= rope.scaling.attn_factor. q is
  scaled by 1/sqrt(D). attn_output [E,E] (+ .bias if present); ffn_norm;
  ffn_up [E,2F] (2F,E): silu(first F) * (second F); ffn_down [F,E];
  output.bias added when present. attention.sliding_window > 0 masks
  every layer with that window: this follows the file; llama.cpp
  currently disables Phi-3 SWA and ignores the key.
gpt-oss: attn_norm [E]; attn_q [E,H*D], attn_k/v [E,KVH*D] with .bias;
  NEOX RoPE over n_rot (= D) with rope.freq_base and the RoPE scaling keys
  (YaRN: the rotation angle of pair i blends p*theta_i*freq_scale and
  p*theta_i with ramp 1 - clip((i - lo)/max(0.001, hi - lo), 0, 1) from
  ggml_rope_yarn_corr_dims: lo = max(0, floor(cd(beta_fast))),
  hi = min(n_rot-1, ceil(cd(beta_slow))), cd(b) = n_rot ln(n_orig /
  (2 pi b)) / (2 ln base), computed in float32 as ggml does); sliding
  layers (il % P < P-1, P = attention.sliding_window_pattern, default 2)
  use attention.sliding_window and rope.freq_base_swa (default
  rope.freq_base); scores scaled by 1/sqrt(n_rot); attn_sinks.weight [H]:
  one logit per head added to the softmax denominator only (absent: no
  sink); attn_output + .bias; x += that. h = rms(x, post_attention_norm);
  router ffn_gate_inp.weight [E,X] + ffn_gate_inp.bias [X]; top K on the
  logits, softmax over the K chosen; experts ffn_gate_exps / ffn_up_exps
  [E,Fx,X] with .bias [Fx,X] (X,Fx), ffn_down_exps [Fx,E,X] with .bias
  [E,X] (X,E); act = g sigmoid(1.702 g) (u + 1) with g = min(gate, 7),
  u = clip(up, -7, 7); x += sum_k w_k (down_k act + bias).
Top-k ties (every MoE): on equal values the lower expert index is chosen
  first (a stable sort).
"""

import math

import numpy as np

import gguf_np

# weight type -> activation type of its dot product (ggml's vec_dot_type)
VEC_DOT_TYPE = {gguf_np.Q4_0: "Q8_0", gguf_np.Q5_0: "Q8_0", gguf_np.Q8_0: "Q8_0",
                gguf_np.Q4_1: "Q8_1", gguf_np.Q5_1: "Q8_1",
                gguf_np.Q4_K: "Q8_K", gguf_np.Q5_K: "Q8_K", gguf_np.Q6_K: "Q8_K"}
# types gguf_np may not define yet (ggml ids in comments)
for _name, _act in (("Q2_K", "Q8_K"),     # 10
                    ("Q3_K", "Q8_K"),     # 11
                    ("IQ4_NL", "Q8_0"),   # 20
                    ("IQ4_XS", "Q8_K"),   # 23
                    ("MXFP4", "Q8_0")):   # 39
    _t = getattr(gguf_np, _name, None)
    if _t is not None:
        VEC_DOT_TYPE[_t] = _act

ARCHS = ("llama", "qwen2", "qwen3", "gpt2", "gemma2", "gemma3", "phi3",
         "qwen2moe", "qwen3moe", "gpt-oss", "bert", "nomic-bert")
ENCODERS = ("bert", "nomic-bert")


def _round_away(v):
    """roundf: nearest, halves away from zero."""
    r = np.trunc(v)
    frac = v - r
    return r + np.where(np.abs(frac) >= 0.5, np.sign(v), 0.0).astype(v.dtype)


def quant_dequant_act(x, act_type, with_sum=False):
    """Rows of x (float) -> float64 values after quantizing each row to
    act_type blocks as ggml's reference quantizers do, in float32.
    with_sum (Q8_1): also return, per block, s - d*sum(q): the error of the
    block's stored sum s = fp16(d_f32 * sum(q)) that the Q4_1/Q5_1 dot
    products use for their min term, shape (rows..., n_blocks)."""
    x = np.asarray(x, dtype=np.float32)
    shape = x.shape
    bs = 256 if act_type == "Q8_K" else 32
    b = x.reshape(-1, bs)
    f32 = np.float32
    if act_type in ("Q8_0", "Q8_1"):
        amax = np.max(np.abs(b), axis=1)
        d = amax / f32(127)
        with np.errstate(divide="ignore"):
            idv = np.where(d != 0, f32(1) / d, f32(0)).astype(f32)
        q = _round_away(b * idv[:, None])
        dh = d.astype(np.float16).astype(f32)
        out = q * dh[:, None]
        if with_sum:
            qsum = q.sum(axis=1, dtype=np.float64).astype(f32)
            sf = (qsum * d).astype(np.float16).astype(np.float64)
            serr = sf - dh.astype(np.float64) * qsum.astype(np.float64)
            return (out.astype(f32).reshape(shape).astype(np.float64),
                    serr.reshape(shape[:-1] + (shape[-1] // bs,)))
    else:  # Q8_K: scale from the signed value of largest magnitude, d in float32
        idx = np.argmax(np.abs(b), axis=1)
        mx = b[np.arange(b.shape[0]), idx]
        with np.errstate(divide="ignore"):
            iscale = np.where(mx != 0, f32(-127) / mx, f32(0)).astype(f32)
        q = np.minimum(np.round(b * iscale[:, None]), f32(127))
        with np.errstate(divide="ignore"):
            d = np.where(iscale != 0, f32(1) / iscale, f32(0)).astype(f32)
        out = q * d[:, None]
    return out.astype(f32).reshape(shape).astype(np.float64)


def _softmax(v):
    v = v - np.max(v)
    e = np.exp(v)
    return e / e.sum()


def topk_index(v, k):
    """Indices of the k largest values of v, largest first; equal values:
    the lower index first (stable sort)."""
    return np.argsort(-np.asarray(v, dtype=np.float64), kind="stable")[:k]


def gelu_tanh(u):
    return 0.5 * u * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (u + 0.044715 * u ** 3)))


def silu(u):
    return u / (1.0 + np.exp(-u))


def yarn_corr_dims(n_rot, n_ctx_orig, base, beta_fast, beta_slow):
    """ggml_rope_yarn_corr_dims, in float32 as ggml computes it (floor/ceil
    make the result discontinuous, so the precision is the C one)."""
    f32 = np.float32

    def cd(beta):
        return (f32(n_rot) * np.log(f32(n_ctx_orig) / (f32(beta) * f32(2) * f32(math.pi)))
                / (f32(2) * np.log(f32(base))))
    lo = float(np.floor(cd(beta_fast)))
    hi = float(np.ceil(cd(beta_slow)))
    return max(0.0, lo), min(float(n_rot - 1), hi)


class RefModel:
    def __init__(self, g, act_quant=False, n_ctx=None):
        md = g.metadata
        self.arch = arch = md["general.architecture"]
        if arch not in ARCHS:
            raise ValueError(f"unsupported architecture {arch!r}")

        def key(k, default=None):
            v = md.get(f"{arch}.{k}", default)
            if v is None:
                raise KeyError(f"missing key {arch}.{k}")
            return v
        self.key = key

        self.n_embd = int(key("embedding_length"))
        self.n_layers = int(key("block_count"))
        self.n_heads = int(key("attention.head_count"))
        self.n_kv_heads = int(key("attention.head_count_kv", self.n_heads))
        self.head_dim = int(key("attention.key_length", self.n_embd // self.n_heads))
        self.n_ctx_train = int(key("context_length"))
        self.n_ctx = self.n_ctx_train if n_ctx is None else int(n_ctx)
        self.hidden_only = False  # forward() returns the normed final rows
        if arch == "gpt2" or arch == "bert":
            self.eps = float(key("attention.layer_norm_epsilon"))
            self.rope = None
        elif arch == "nomic-bert":
            self.eps = float(key("attention.layer_norm_epsilon"))
            self.rope = "neox"
            self.n_rot = int(key("rope.dimension_count", self.head_dim))
            self.rope_base = float(key("rope.freq_base", 10000.0))
        else:
            self.eps = float(key("attention.layer_norm_rms_epsilon"))
            self.rope = "norm" if arch == "llama" else "neox"
            self.n_rot = int(key("rope.dimension_count", self.head_dim))
            self.rope_base = float(key("rope.freq_base", 10000.0))
        self.g = g
        self.w = {}
        self.act_type = {}
        self.wmin = {}  # Q4_1/Q5_1: per-block mins (rows..., n_blocks), for the sum term
        for name in g.tensors:
            self.w[name] = g.tensor(name).astype(np.float64)
            t = getattr(g.tensors[name], "type", None)
            if act_quant and t in VEC_DOT_TYPE:
                self.act_type[name] = VEC_DOT_TYPE[t]
                if t in (gguf_np.Q4_1, gguf_np.Q5_1):
                    ts = gguf_np.TYPES[t][2]
                    raw = g.raw(name).reshape(-1, ts)
                    m = raw[:, 2:4].copy().view("<f2").astype(np.float64)
                    self.wmin[name] = m.reshape(self.w[name].shape[:-1] + (-1,))
        self.n_vocab = self.w["token_embd.weight"].shape[0]
        self.out_name = "output.weight" if "output.weight" in self.w else "token_embd.weight"
        # inverse frequencies theta_i = base^(-2i/n_rot), divided by the
        # Llama-3 factors when rope_freqs.weight is present
        if self.rope:
            i = np.arange(self.n_rot // 2, dtype=np.float64)
            self.inv_freq = self.rope_base ** (-2.0 * i / self.n_rot)
            if "rope_freqs.weight" in self.w:
                self.inv_freq = self.inv_freq / self.w["rope_freqs.weight"]
        if any(n.endswith("ffn_gate_inp.weight") for n in self.w):
            self.n_expert = int(key("expert_count"))
            self.n_expert_used = int(key("expert_used_count"))
        if arch in ("gemma2", "gemma3", "phi3", "gpt-oss"):
            self._init_ext()

    # ------------------------------------------------------------ setup of the newer archs
    def _rope_scaling(self):
        """llama.cpp's reading of the RoPE scaling keys -> dict."""
        key = self.key
        typ = str(key("rope.scaling.type", "linear"))
        if typ not in ("none", "linear", "yarn"):
            raise ValueError(f"unsupported rope.scaling.type {typ!r}")
        factor = float(key("rope.scaling.factor", 0.0))
        freq_scale = 1.0 if factor == 0.0 or typ == "none" else 1.0 / factor
        ext = 1.0 if typ == "yarn" else 0.0
        attn = 1.0
        if ext != 0.0:
            if float(key("rope.scaling.yarn_log_multiplier", 0.0)) != 0.0:
                raise ValueError("rope.scaling.yarn_log_multiplier is not supported")
            f = 1.0 / freq_scale
            # llama.cpp (PR 17945): get_mscale(f) / (1 + 0.1 ln f); ggml's
            # rope_yarn then multiplies by 1 + 0.1 ln(1/freq_scale)
            attn = (1.0 if f <= 1.0 else 0.1 * math.log(f) + 1.0) / (1.0 + 0.1 * math.log(f))
        attn *= float(key("rope.scaling.attn_factor", 1.0))
        return {"type": typ, "freq_scale": freq_scale, "ext_factor": ext, "attn_factor": attn,
                "n_ctx_orig": int(key("rope.scaling.original_context_length", self.n_ctx_train)),
                "beta_fast": float(key("rope.scaling.yarn_beta_fast", 32.0)),
                "beta_slow": float(key("rope.scaling.yarn_beta_slow", 1.0))}

    def _init_ext(self):
        arch, key, L = self.arch, self.key, self.n_layers
        sc = self._rope_scaling()
        self.rope_scaling = sc
        glob = {"base": self.rope_base, "freq_scale": sc["freq_scale"],
                "ext_factor": sc["ext_factor"], "attn_factor": sc["attn_factor"], "factors": None}
        self.swa = [False] * L
        self.window = 0
        self.softcap_attn = 0.0
        self.softcap_final = 0.0
        self.sinks = False
        local = dict(glob)
        if arch in ("gemma2", "gemma3"):
            if sc["type"] == "yarn":
                raise ValueError("yarn RoPE scaling is not supported for gemma")
            nl = 46 if arch == "gemma2" else 62  # the 27B models
            if f"{arch}.attention.scale" in self.g.metadata:
                self.q_scale = float(key("attention.scale"))
            elif L == nl:
                self.q_scale = 1.0 / math.sqrt(float(self.n_embd // self.n_heads))
            else:
                self.q_scale = 1.0 / math.sqrt(float(self.head_dim))
            if arch == "gemma2":
                self.window = int(key("attention.sliding_window", 4096))
                self.swa = [il % 2 < 1 for il in range(L)]
                self.softcap_attn = float(key("attn_logit_softcapping", 50.0))
                self.softcap_final = float(key("final_logit_softcapping", 30.0))
                # gemma2 reads no scaling: plain RoPE on every layer
                glob = local = {"base": self.rope_base, "freq_scale": 1.0, "ext_factor": 0.0,
                                "attn_factor": 1.0, "factors": None}
            else:
                self.window = int(key("attention.sliding_window", 0))
                if self.window > 0:
                    self.swa = [il % 6 < 5 for il in range(L)]
                local = {"base": 10000.0, "freq_scale": 1.0, "ext_factor": 0.0,
                         "attn_factor": 1.0, "factors": None}
        elif arch == "phi3":
            if sc["type"] == "yarn":
                raise ValueError("yarn RoPE scaling is not supported for phi3")
            self.window = int(key("attention.sliding_window", 0))
            if self.window > 0:
                self.swa = [True] * L
            if "rope_factors_long.weight" in self.w:
                long = self.n_ctx > sc["n_ctx_orig"]
                self.rope_factors_name = ("rope_factors_long.weight" if long
                                          else "rope_factors_short.weight")
                glob["factors"] = self.w[self.rope_factors_name]
            local = glob
        else:  # gpt-oss
            self.window = int(key("attention.sliding_window"))
            pat = int(key("attention.sliding_window_pattern", 2))
            self.swa = [il % pat < pat - 1 for il in range(L)]
            local = dict(glob)
            local["base"] = float(key("rope.freq_base_swa", self.rope_base))
            self.sinks = True
        for d in (glob, local):
            if d["ext_factor"] != 0.0:
                d["corr"] = yarn_corr_dims(self.n_rot, sc["n_ctx_orig"], d["base"],
                                           sc["beta_fast"], sc["beta_slow"])
        self.rope_global, self.rope_local = glob, local

    # ------------------------------------------------------------ pieces
    def mm(self, x, name):
        """x @ W^T for the weight 'name' (rows of W are output features)."""
        if name in self.wmin:
            # Q8_1 x Q4_1/Q5_1: sum_i (q_w d_w + m)(q_a d_a) with the min term
            # taken from the activation block's stored fp16 sum s
            xq, serr = quant_dequant_act(x, "Q8_1", with_sum=True)
            return xq @ self.w[name].T + serr @ self.wmin[name].T
        if name in self.act_type:
            x = quant_dequant_act(x, self.act_type[name])
        return x @ self.w[name].T

    def mm_exp(self, x, name, e):
        """x @ W[e]^T for expert e of the 3-D expert tensor 'name'."""
        W = self.w[name][e]
        if name in self.wmin:
            xq, serr = quant_dequant_act(x, "Q8_1", with_sum=True)
            return xq @ W.T + serr @ self.wmin[name][e].T
        if name in self.act_type:
            x = quant_dequant_act(x, self.act_type[name])
        return x @ W.T

    def rmsnorm(self, x, w):
        return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + self.eps) * w

    def layernorm(self, x, w, b):
        mu = np.mean(x, axis=-1, keepdims=True)
        var = np.mean((x - mu) ** 2, axis=-1, keepdims=True)
        return (x - mu) / np.sqrt(var + self.eps) * w + b

    def apply_rope(self, x, pos):
        """x: (T, H, D) rotated in place-copy by positions pos (T,)."""
        x = x.copy()
        ang = pos[:, None].astype(np.float64) * self.inv_freq[None, :]     # (T, n_rot/2)
        c, s = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
        half = self.n_rot // 2
        if self.rope == "norm":
            a, b = x[:, :, 0:self.n_rot:2].copy(), x[:, :, 1:self.n_rot:2].copy()
            x[:, :, 0:self.n_rot:2] = a * c - b * s
            x[:, :, 1:self.n_rot:2] = a * s + b * c
        else:
            a, b = x[:, :, 0:half].copy(), x[:, :, half:self.n_rot].copy()
            x[:, :, 0:half] = a * c - b * s
            x[:, :, half:self.n_rot] = a * s + b * c
        return x

    def rope_cos_sin(self, pos, rp):
        """cos, sin (T, n_rot/2) of ggml_rope_ext with the parameters rp
        (base, freq_scale, ext_factor, attn_factor, factors, corr),
        following ggml's rope_yarn: theta_extrap = p base^(-2i/n_rot) / ff_i,
        theta_interp = freq_scale theta_extrap, blended by the YaRN ramp
        when ext_factor != 0; cos and sin times mscale."""
        i = np.arange(self.n_rot // 2, dtype=np.float64)
        th_ex = pos[:, None].astype(np.float64) * (rp["base"] ** (-2.0 * i / self.n_rot))[None, :]
        if rp["factors"] is not None:
            th_ex = th_ex / rp["factors"][None, :]
        th_in = rp["freq_scale"] * th_ex
        mscale = rp["attn_factor"]
        if rp["ext_factor"] != 0.0:
            lo, hi = rp["corr"]
            y = (i - lo) / max(0.001, hi - lo)
            mix = (1.0 - np.clip(y, 0.0, 1.0)) * rp["ext_factor"]
            th = th_in * (1.0 - mix)[None, :] + th_ex * mix[None, :]
            mscale = mscale * (1.0 + 0.1 * math.log(1.0 / rp["freq_scale"]))
        else:
            th = th_in
        return np.cos(th) * mscale, np.sin(th) * mscale

    def rope_neox(self, x, c, s):
        """x: (T, H, D); NEOX rotation of the first n_rot dims (halves)."""
        x = x.copy()
        half = self.n_rot // 2
        c, s = c[:, None, :], s[:, None, :]
        a, b = x[:, :, 0:half].copy(), x[:, :, half:self.n_rot].copy()
        x[:, :, 0:half] = a * c - b * s
        x[:, :, half:self.n_rot] = a * s + b * c
        return x

    def attention(self, q, k, v):
        """q: (T, H, D), k, v: (T, KVH, D); causal, GQA -> (T, H*D)."""
        T, H, D = q.shape
        group = H // self.n_kv_heads
        out = np.empty((T, H, D))
        mask = np.triu(np.full((T, T), -np.inf), k=1)
        for h in range(H):
            kh = h // group
            sc = q[:, h, :] @ k[:, kh, :].T / math.sqrt(D) + mask
            sc = sc - sc.max(axis=-1, keepdims=True)
            p = np.exp(sc)
            p /= p.sum(axis=-1, keepdims=True)
            out[:, h, :] = p @ v[:, kh, :]
        return out.reshape(T, H * D)

    def attention_ext(self, q, k, v, kq_scale, window=0, softcap=0.0, sinks=None):
        """Causal GQA attention with llama.cpp's extras, in its order:
        scores = q.k; softcap: c tanh(scores / c); times kq_scale; mask:
        t > p, and p - t >= window when window > 0; softmax whose
        denominator also holds exp(sinks[h]) when sinks is given."""
        T, H, D = q.shape
        group = H // k.shape[1]
        out = np.empty((T, H, v.shape[2]))
        t = np.arange(T)
        dist = t[:, None] - t[None, :]
        masked = dist < 0
        if window > 0:
            masked = masked | (dist >= window)
        for h in range(H):
            kh = h // group
            sc = q[:, h, :] @ k[:, kh, :].T
            if softcap:
                sc = softcap * np.tanh(sc / softcap)
            sc = sc * kq_scale
            sc[masked] = -np.inf
            m = sc.max(axis=-1, keepdims=True)
            if sinks is not None:
                m = np.maximum(m, sinks[h])
            p = np.exp(sc - m)
            den = p.sum(axis=-1, keepdims=True)
            if sinks is not None:
                den = den + np.exp(sinks[h] - m)
            out[:, h, :] = (p / den) @ v[:, kh, :]
        return out.reshape(T, -1)

    def moe(self, h, p):
        """Mixture-of-experts FFN of layer prefix p on rows h (T, E)."""
        w = self.w
        arch = self.arch
        logits = self.mm(h, p + "ffn_gate_inp.weight")
        if p + "ffn_gate_inp.bias" in w:
            logits = logits + w[p + "ffn_gate_inp.bias"]
        K = self.n_expert_used
        out = np.zeros_like(h)
        for t in range(h.shape[0]):
            lg = logits[t]
            if arch == "gpt-oss":          # top-k of the logits, softmax of the k
                sel = topk_index(lg, K)
                wts = _softmax(lg[sel])
            else:                          # softmax, top-k of the probabilities
                probs = _softmax(lg)
                sel = topk_index(probs, K)
                wts = probs[sel]
                if arch != "qwen2moe":     # renormalised (llama, qwen3moe)
                    wts = wts / max(wts.sum(), 6.103515625e-5)
            x1 = h[t:t + 1]
            for e, wt in zip(sel, wts):
                gte = self.mm_exp(x1, p + "ffn_gate_exps.weight", e)
                up = self.mm_exp(x1, p + "ffn_up_exps.weight", e)
                if arch == "gpt-oss":
                    gte = gte + w[p + "ffn_gate_exps.bias"][e]
                    up = up + w[p + "ffn_up_exps.bias"][e]
                    g = np.minimum(gte, 7.0)
                    u = np.clip(up, -7.0, 7.0)
                    act = g / (1.0 + np.exp(-1.702 * g)) * (u + 1.0)
                else:
                    act = silu(gte) * up
                y = self.mm_exp(act, p + "ffn_down_exps.weight", e)
                if arch == "gpt-oss":
                    y = y + w[p + "ffn_down_exps.bias"][e]
                out[t] += wt * y[0]
        if p + "ffn_gate_inp_shexp.weight" in w:   # qwen2moe shared expert
            gs = self.mm(h, p + "ffn_gate_inp_shexp.weight").reshape(-1, 1)
            act = silu(self.mm(h, p + "ffn_gate_shexp.weight")) * self.mm(h, p + "ffn_up_shexp.weight")
            out = out + 1.0 / (1.0 + np.exp(-gs)) * self.mm(act, p + "ffn_down_shexp.weight")
        return out

    # ------------------------------------------------------------ forward
    def forward(self, tokens):
        tokens = np.asarray(tokens, dtype=np.int64)
        if self.arch == "gpt2":
            return self._forward_gpt2(tokens)
        if self.arch in ("gemma2", "gemma3"):
            return self._forward_gemma(tokens)
        if self.arch == "phi3":
            return self._forward_phi3(tokens)
        if self.arch == "gpt-oss":
            return self._forward_gptoss(tokens)
        return self._forward_llama(tokens)

    def _forward_llama(self, tokens):
        w = self.w
        T = len(tokens)
        H, KVH, D = self.n_heads, self.n_kv_heads, self.head_dim
        pos = np.arange(T)
        x = w["token_embd.weight"][tokens]
        for il in range(self.n_layers):
            p = f"blk.{il}."
            h = self.rmsnorm(x, w[p + "attn_norm.weight"])
            q = self.mm(h, p + "attn_q.weight")
            k = self.mm(h, p + "attn_k.weight")
            v = self.mm(h, p + "attn_v.weight")
            if p + "attn_q.bias" in w:
                q = q + w[p + "attn_q.bias"]
                k = k + w[p + "attn_k.bias"]
                v = v + w[p + "attn_v.bias"]
            q = q.reshape(T, H, D)
            k = k.reshape(T, KVH, D)
            v = v.reshape(T, KVH, D)
            if p + "attn_q_norm.weight" in w:
                q = self.rmsnorm(q, w[p + "attn_q_norm.weight"])
                k = self.rmsnorm(k, w[p + "attn_k_norm.weight"])
            q = self.apply_rope(q, pos)
            k = self.apply_rope(k, pos)
            a = self.attention(q, k, v)
            x = x + self.mm(a, p + "attn_output.weight")
            h = self.rmsnorm(x, w[p + "ffn_norm.weight"])
            if p + "ffn_gate_inp.weight" in w:
                x = x + self.moe(h, p)
                continue
            gte = self.mm(h, p + "ffn_gate.weight")
            up = self.mm(h, p + "ffn_up.weight")
            act = gte / (1.0 + np.exp(-gte)) * up
            x = x + self.mm(act, p + "ffn_down.weight")
        x = self.rmsnorm(x, w["output_norm.weight"])
        if self.hidden_only:
            return x
        return self.mm(x, self.out_name)

    def _rope_for(self, il, pos):
        return self.rope_cos_sin(pos, self.rope_local if self.swa[il] else self.rope_global)

    def _forward_gemma(self, tokens):
        w = self.w
        T = len(tokens)
        H, KVH, D = self.n_heads, self.n_kv_heads, self.head_dim
        pos = np.arange(T)
        x = w["token_embd.weight"][tokens] * math.sqrt(self.n_embd)
        for il in range(self.n_layers):
            p = f"blk.{il}."
            h = self.rmsnorm(x, w[p + "attn_norm.weight"])
            q = self.mm(h, p + "attn_q.weight").reshape(T, H, D)
            k = self.mm(h, p + "attn_k.weight").reshape(T, KVH, D)
            v = self.mm(h, p + "attn_v.weight").reshape(T, KVH, D)
            if self.arch == "gemma3":
                q = self.rmsnorm(q, w[p + "attn_q_norm.weight"])
                k = self.rmsnorm(k, w[p + "attn_k_norm.weight"])
            c, s = self._rope_for(il, pos)
            q = self.rope_neox(q, c, s) * self.q_scale
            k = self.rope_neox(k, c, s)
            a = self.attention_ext(q, k, v, 1.0, self.window if self.swa[il] else 0,
                                   self.softcap_attn)
            a = self.rmsnorm(self.mm(a, p + "attn_output.weight"), w[p + "post_attention_norm.weight"])
            x = x + a
            h = self.rmsnorm(x, w[p + "ffn_norm.weight"])
            act = gelu_tanh(self.mm(h, p + "ffn_gate.weight")) * self.mm(h, p + "ffn_up.weight")
            x = x + self.rmsnorm(self.mm(act, p + "ffn_down.weight"), w[p + "post_ffw_norm.weight"])
        x = self.rmsnorm(x, w["output_norm.weight"])
        if self.hidden_only:
            return x
        lg = self.mm(x, self.out_name)
        if self.softcap_final:
            lg = self.softcap_final * np.tanh(lg / self.softcap_final)
        return lg

    def _forward_phi3(self, tokens):
        w = self.w
        T = len(tokens)
        H, KVH, D = self.n_heads, self.n_kv_heads, self.head_dim
        pos = np.arange(T)
        x = w["token_embd.weight"][tokens]
        for il in range(self.n_layers):
            p = f"blk.{il}."
            h = self.rmsnorm(x, w[p + "attn_norm.weight"])
            if p + "attn_qkv.weight" in w:
                qkv = self.mm(h, p + "attn_qkv.weight")
                if p + "attn_qkv.bias" in w:
                    qkv = qkv + w[p + "attn_qkv.bias"]
                q = qkv[:, 0:H * D]
                k = qkv[:, H * D:(H + KVH) * D]
                v = qkv[:, (H + KVH) * D:(H + 2 * KVH) * D]
            else:
                q = self.mm(h, p + "attn_q.weight")
                k = self.mm(h, p + "attn_k.weight")
                v = self.mm(h, p + "attn_v.weight")
                if p + "attn_q.bias" in w:
                    q = q + w[p + "attn_q.bias"]
                    k = k + w[p + "attn_k.bias"]
                    v = v + w[p + "attn_v.bias"]
            q, k, v = q.reshape(T, H, D), k.reshape(T, KVH, D), v.reshape(T, KVH, D)
            c, s = self._rope_for(il, pos)
            q = self.rope_neox(q, c, s) * (1.0 / math.sqrt(D))
            k = self.rope_neox(k, c, s)
            a = self.attention_ext(q, k, v, 1.0, self.window if self.swa[il] else 0)
            a = self.mm(a, p + "attn_output.weight")
            if p + "attn_output.bias" in w:
                a = a + w[p + "attn_output.bias"]
            x = x + a
            h = self.rmsnorm(x, w[p + "ffn_norm.weight"])
            up = self.mm(h, p + "ffn_up.weight")
            F = up.shape[1] // 2
            x = x + self.mm(silu(up[:, :F]) * up[:, F:], p + "ffn_down.weight")
        x = self.rmsnorm(x, w["output_norm.weight"])
        if self.hidden_only:
            return x
        lg = self.mm(x, self.out_name)
        if "output.bias" in w:
            lg = lg + w["output.bias"]
        return lg

    def _forward_gptoss(self, tokens):
        w = self.w
        T = len(tokens)
        H, KVH, D = self.n_heads, self.n_kv_heads, self.head_dim
        pos = np.arange(T)
        x = w["token_embd.weight"][tokens]
        for il in range(self.n_layers):
            p = f"blk.{il}."
            h = self.rmsnorm(x, w[p + "attn_norm.weight"])
            q = self.mm(h, p + "attn_q.weight")
            k = self.mm(h, p + "attn_k.weight")
            v = self.mm(h, p + "attn_v.weight")
            for nm, t in (("attn_q", "q"), ("attn_k", "k"), ("attn_v", "v")):
                if p + nm + ".bias" in w:
                    if t == "q":
                        q = q + w[p + nm + ".bias"]
                    elif t == "k":
                        k = k + w[p + nm + ".bias"]
                    else:
                        v = v + w[p + nm + ".bias"]
            q, k, v = q.reshape(T, H, D), k.reshape(T, KVH, D), v.reshape(T, KVH, D)
            c, s = self._rope_for(il, pos)
            q = self.rope_neox(q, c, s)
            k = self.rope_neox(k, c, s)
            sinks = w.get(p + "attn_sinks.weight")
            a = self.attention_ext(q, k, v, 1.0 / math.sqrt(self.n_rot),
                                   self.window if self.swa[il] else 0, 0.0, sinks)
            a = self.mm(a, p + "attn_output.weight")
            if p + "attn_output.bias" in w:
                a = a + w[p + "attn_output.bias"]
            x = x + a
            h = self.rmsnorm(x, w[p + "post_attention_norm.weight"])
            x = x + self.moe(h, p)
        x = self.rmsnorm(x, w["output_norm.weight"])
        if self.hidden_only:
            return x
        return self.mm(x, self.out_name)

    def _forward_gpt2(self, tokens):
        w = self.w
        T = len(tokens)
        H, D, E = self.n_heads, self.head_dim, self.n_embd
        x = w["token_embd.weight"][tokens] + w["position_embd.weight"][np.arange(T)]
        for il in range(self.n_layers):
            p = f"blk.{il}."
            h = self.layernorm(x, w[p + "attn_norm.weight"], w[p + "attn_norm.bias"])
            qkv = self.mm(h, p + "attn_qkv.weight") + w[p + "attn_qkv.bias"]
            q = qkv[:, 0:E].reshape(T, H, D)
            k = qkv[:, E:2 * E].reshape(T, H, D)
            v = qkv[:, 2 * E:3 * E].reshape(T, H, D)
            a = self.attention(q, k, v)
            x = x + self.mm(a, p + "attn_output.weight") + w[p + "attn_output.bias"]
            h = self.layernorm(x, w[p + "ffn_norm.weight"], w[p + "ffn_norm.bias"])
            u = self.mm(h, p + "ffn_up.weight") + w[p + "ffn_up.bias"]
            u = 0.5 * u * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (u + 0.044715 * u ** 3)))
            x = x + self.mm(u, p + "ffn_down.weight") + w[p + "ffn_down.bias"]
        x = self.layernorm(x, w["output_norm.weight"], w["output_norm.bias"])
        if self.hidden_only:
            return x
        return self.mm(x, self.out_name)

    # ------------------------------------------------------------ encoders
    def encode(self, tokens):
        """bert / nomic-bert: the final hidden rows (T, E) of one sequence,
        attention bidirectional (no mask) over all T tokens.

        HF BertModel: embeddings = word[t] + token_type[0] + position[p]
        (bert only; nomic-bert rotates q and k instead: NEOX RoPE, base
        rope.freq_base), LayerNorm (token_embd_norm). Per layer, post-norm:
        x = LN(x + Wo softmax(q k^T / sqrt(D)) v + bo, attn_output_norm);
        x = LN(x + ffn(x), layer_output_norm), ffn = down(gelu(up x + b)) + b
        with the exact (erf) GELU for bert, down(silu(gate x) * up x) for
        nomic-bert. Biases wherever the file has them."""
        w = self.w
        tokens = np.asarray(tokens, dtype=np.int64)
        T = len(tokens)
        H, KVH, D = self.n_heads, self.n_kv_heads, self.head_dim
        pos = np.arange(T)
        x = w["token_embd.weight"][tokens] + w["token_types.weight"][0]
        if "position_embd.weight" in w:
            x = x + w["position_embd.weight"][pos]
        x = self.layernorm(x, w["token_embd_norm.weight"], w["token_embd_norm.bias"])

        def lin(h, name):
            y = self.mm(h, name + ".weight")
            return y + w[name + ".bias"] if name + ".bias" in w else y
        erf = np.vectorize(math.erf)
        for il in range(self.n_layers):
            p = f"blk.{il}."
            if p + "attn_qkv.weight" in w:
                qkv = lin(x, p + "attn_qkv")
                q, k, v = (qkv[:, :H * D], qkv[:, H * D:(H + KVH) * D],
                           qkv[:, (H + KVH) * D:(H + 2 * KVH) * D])
            else:
                q, k, v = lin(x, p + "attn_q"), lin(x, p + "attn_k"), lin(x, p + "attn_v")
            q, k, v = q.reshape(T, H, D), k.reshape(T, KVH, D), v.reshape(T, KVH, D)
            if self.rope:
                q, k = self.apply_rope(q, pos), self.apply_rope(k, pos)
            group = H // KVH
            a = np.empty((T, H, D))
            for h in range(H):
                sc = q[:, h, :] @ k[:, h // group, :].T / math.sqrt(D)
                sc = np.exp(sc - sc.max(axis=-1, keepdims=True))
                a[:, h, :] = (sc / sc.sum(axis=-1, keepdims=True)) @ v[:, h // group, :]
            a = lin(a.reshape(T, H * D), p + "attn_output")
            x = self.layernorm(x + a, w[p + "attn_output_norm.weight"],
                               w[p + "attn_output_norm.bias"])
            if p + "ffn_gate.weight" in w:
                y = lin(silu(lin(x, p + "ffn_gate")) * lin(x, p + "ffn_up"), p + "ffn_down")
            else:
                u = lin(x, p + "ffn_up")
                y = lin(0.5 * u * (1.0 + erf(u / math.sqrt(2.0))), p + "ffn_down")
            x = self.layernorm(x + y, w[p + "layer_output_norm.weight"],
                               w[p + "layer_output_norm.bias"])
        return x

    def pooling_type(self):
        """The file's pooling: 1 mean, 2 cls, 3 last (absent or 0: mean)."""
        v = int(self.g.metadata.get(f"{self.arch}.pooling_type", 0))
        return v if v in (1, 2, 3) else 1

    def embed(self, tokens, pooling=0, normalize=False):
        """One sequence's pooled vector (E,): encoders pool their final
        rows, decoders the final hidden states after output_norm (causal).
        pooling 0: the file's (pooling_type(); mean for decoders)."""
        if self.arch in ENCODERS:
            rows = self.encode(tokens)
            pool = pooling or self.pooling_type()
        else:
            self.hidden_only = True
            try:
                rows = self.forward(tokens)
            finally:
                self.hidden_only = False
            pool = pooling or 1
        v = rows.mean(axis=0) if pool == 1 else rows[0] if pool == 2 else rows[-1]
        if normalize:
            n = np.sqrt(np.sum(v * v))
            v = v / n if n > 0 else v
        return v

    def greedy(self, tokens, n):
        """Greedy continuation: n ids, each argmax of the last row's logits.
        Also returns the top-1/top-2 margin at each step (for tie checks)."""
        seq = list(tokens)
        out, margins = [], []
        for _ in range(n):
            lg = self.forward(seq)[-1]
            order = np.argsort(-lg)
            out.append(int(order[0]))
            margins.append(float(lg[order[0]] - lg[order[1]]) if len(lg) > 1 else math.inf)
            seq.append(int(order[0]))
        return out, margins
