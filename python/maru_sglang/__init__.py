"""maru_sglang: SGLang HiCache's L3 storage backend over Maru (``maru_sglang.storage``).

Enable it with::

    python -m sglang.launch_server ... --enable-hierarchical-cache \\
        --hicache-mem-layout page_first --hicache-storage-backend dynamic \\
        --hicache-storage-backend-extra-config '{"backend_name": "maru",
            "module_path": "maru_sglang.storage", "class_name": "MaruStorage",
            "maru_path": "maru:///mnt/maru/<pool>"}'

See ``docs/sglang.md``. Importing ``maru_sglang.storage`` needs SGLang.
"""
