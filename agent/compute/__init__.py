"""The compute manager: SF repository, resolver, scheduler, and the compute drivers."""
