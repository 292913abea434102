"""COMPOSER-NC agent: NETCONF server, datastores, transaction engine, managers, publishers."""

__version__ = "0.1.0"
