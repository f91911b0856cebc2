"""Broker layer: the only package that imports simplebroker."""

from weft.broker.startup import defer_importlib_metadata

defer_importlib_metadata()  # before simplebroker is imported (see weft.broker.startup)

from weft.broker.broker import Broker, Message, opened  # noqa: E402

__all__ = ["Broker", "Message", "opened"]
