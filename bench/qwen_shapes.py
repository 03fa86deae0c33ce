"""Qwen2.5 model shapes, as the released checkpoints' config.json give them (Hugging Face Hub, Qwen/Qwen2.5-0.5B
and Qwen/Qwen2.5-Math-1.5B): the benches build randomly initialised models of these sizes offline."""

QWEN2_5 = {
    "qwen2.5-0.5b": dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                         num_key_value_heads=2, vocab_size=151936, tie_word_embeddings=True,
                         max_position_embeddings=32768, rope_theta=1000000.0, rms_norm_eps=1e-6),
    "qwen2.5-math-1.5b": dict(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12,
                              num_key_value_heads=2, vocab_size=151936, tie_word_embeddings=True,
                              max_position_embeddings=4096, rope_theta=10000.0, rms_norm_eps=1e-6),
}

# Qwen2.5's tokenizer: 151,643 byte-level BPE tokens, then these special tokens from id 151,643 on (the two
# tool-call tags are added but not special); the embedding matrix is padded to 151,936 rows.
BPE_TOKENS = 151643
SPECIAL_TOKENS = (
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>", "<|box_start|>",
    "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>",
    "<|image_pad|>", "<|video_pad|>", "<tool_call>", "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>",
    "<|fim_suffix|>", "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>",
)
NOT_SPECIAL = {"<tool_call>", "</tool_call>"}
# The pre-tokenizer's split (tokenizer.json: a Split on this pattern, then ByteLevel without its own regex).
PRE_TOKENIZER_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
                         r"\s*[\r\n]+|\s+(?!\S)|\s+")
# Qwen2.5's chat template without its tool-calling branch; its generation prompt is the Jinja literal
# '<|im_start|>assistant\n' that examples/prepare_model.py turns into the "-think" one.
CHAT_TEMPLATE = (
    "{%- if messages[0]['role'] == 'system' %}{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
    "{%- else %}{{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant."
    "<|im_end|>\\n' }}{%- endif %}"
    "{%- for message in messages %}{%- if not (message['role'] == 'system' and loop.first) %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}{%- endif %}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)
