"""Drivers for the vSwitch and the compute technologies; they never import the agent."""
