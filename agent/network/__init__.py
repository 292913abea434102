"""The network manager: LSI-0, graph-LSIs, virtual links, SAPs and the rule split."""
