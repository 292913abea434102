"""NETCONF latency benchmark: composer-agent against yuma123 netconfd (see __main__)."""
