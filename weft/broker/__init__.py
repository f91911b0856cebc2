"""Broker layer: the only package that imports simplebroker."""

from weft.broker.broker import Broker, Message, opened

__all__ = ["Broker", "Message", "opened"]
