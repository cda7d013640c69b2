"""``maru_handler.handler`` as in the original Maru package (the handler is :mod:`maru.handler`)."""

from maru.handler import MaruHandler

__all__ = ["MaruHandler"]
