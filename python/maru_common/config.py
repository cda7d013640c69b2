"""``maru_common.config`` as in the original Maru package (the config is :mod:`maru.config`)."""

from maru.config import MaruConfig, pool_path_from_url

__all__ = ["MaruConfig", "pool_path_from_url"]
