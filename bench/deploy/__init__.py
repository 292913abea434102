"""The deploy benchmark: N personal firewalls over NETCONF against a plain shell script."""
