"""ref_model.py - NumPy float64 forward pass of llama, qwen2, qwen3, gpt2.

The test oracle for cgpt's C forward pass. Written from the architecture
definitions (HF transformers LlamaForCausalLM / Qwen2 / Qwen3 / GPT2 and
llama.cpp's llm_build_* graphs), not from cgpt's C code. Weights come from
gguf_np (dequantized in NumPy); all arithmetic is float64.

    m = RefModel(gguf_np.load(path))
    logits = m.forward([1, 2, 3])        # (T, n_vocab) float64
    ids, margins = m.greedy([1, 2, 3], 8)

act_quant=True models what ggml (and cgpt) do in a matmul with quantized
weights: the activation row is first quantized to the weight type's
vec_dot_type (Q8_0 for Q4_0/Q5_0/Q8_0, Q8_1 for Q4_1/Q5_1, Q8_K for the
K-quants; quantize_row_q8_*_ref in ggml-quants.c), then the dot product is
exact. Everything else stays float64.
"""

import math

import numpy as np

import gguf_np

# weight type -> activation type of its dot product (ggml's vec_dot_type)
VEC_DOT_TYPE = {gguf_np.Q4_0: "Q8_0", gguf_np.Q5_0: "Q8_0", gguf_np.Q8_0: "Q8_0",
                gguf_np.Q4_1: "Q8_1", gguf_np.Q5_1: "Q8_1",
                gguf_np.Q4_K: "Q8_K", gguf_np.Q5_K: "Q8_K", gguf_np.Q6_K: "Q8_K"}


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


class RefModel:
    def __init__(self, g, act_quant=False):
        md = g.metadata
        self.arch = arch = md["general.architecture"]
        if arch not in ("llama", "qwen2", "qwen3", "gpt2"):
            raise ValueError(f"unsupported architecture {arch!r}")

        def key(k, default=None):
            v = md.get(f"{arch}.{k}", default)
            if v is None:
                raise KeyError(f"missing key {arch}.{k}")
            return v

        self.n_embd = int(key("embedding_length"))
        self.n_layers = int(key("block_count"))
        self.n_heads = int(key("attention.head_count"))
        self.n_kv_heads = int(key("attention.head_count_kv", self.n_heads))
        self.head_dim = int(key("attention.key_length", self.n_embd // self.n_heads))
        self.n_ctx_train = int(key("context_length"))
        if arch == "gpt2":
            self.eps = float(key("attention.layer_norm_epsilon"))
            self.rope = None
        else:
            self.eps = float(key("attention.layer_norm_rms_epsilon"))
            self.rope = "norm" if arch == "llama" else "neox"
            self.n_rot = int(key("rope.dimension_count", self.head_dim))
            self.rope_base = float(key("rope.freq_base", 10000.0))
        self.g = g
        self.w = {}
        self.act_type = {}
        self.wmin = {}  # Q4_1/Q5_1: per-block mins (rows, n_blocks), for the sum term
        for name in g.tensors:
            self.w[name] = g.tensor(name).astype(np.float64)
            t = getattr(g.tensors[name], "type", None)
            if act_quant and t in VEC_DOT_TYPE:
                self.act_type[name] = VEC_DOT_TYPE[t]
                if t in (gguf_np.Q4_1, gguf_np.Q5_1):
                    ts = gguf_np.TYPES[t][2]
                    raw = g.raw(name).reshape(-1, ts)
                    m = raw[:, 2:4].copy().view("<f2").astype(np.float64)
                    self.wmin[name] = m.reshape(self.w[name].shape[0], -1)
        self.n_vocab = self.w["token_embd.weight"].shape[0]
        self.out_name = "output.weight" if "output.weight" in self.w else "token_embd.weight"
        # inverse frequencies theta_i = base^(-2i/n_rot), divided by the
        # Llama-3 factors when rope_freqs.weight is present
        if self.rope:
            i = np.arange(self.n_rot // 2, dtype=np.float64)
            self.inv_freq = self.rope_base ** (-2.0 * i / self.n_rot)
            if "rope_freqs.weight" in self.w:
                self.inv_freq = self.inv_freq / self.w["rope_freqs.weight"]

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

    # ------------------------------------------------------------ forward
    def forward(self, tokens):
        tokens = np.asarray(tokens, dtype=np.int64)
        if self.arch == "gpt2":
            return self._forward_gpt2(tokens)
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
            gte = self.mm(h, p + "ffn_gate.weight")
            up = self.mm(h, p + "ffn_up.weight")
            act = gte / (1.0 + np.exp(-gte)) * up
            x = x + self.mm(act, p + "ffn_down.weight")
        x = self.rmsnorm(x, w["output_norm.weight"])
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
        return self.mm(x, self.out_name)

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
