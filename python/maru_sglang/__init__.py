"""maru_sglang: SGLang HiCache L3 storage backend over Maru (see storage.py)."""
