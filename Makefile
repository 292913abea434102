# COMPOSER-NC: the two commands are `make run` and `make test`; both idempotent, both as root.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.txt setup.cfg pyproject.toml | md5sum | cut -c1-12)
CONFIG ?=
PYTEST_ARGS ?=
DEMO_ARGS ?=

.PHONY: all run demo test deps venv bindings check-bindings lint-yang nsf images guest libvirtd clean

all: venv

deps:
	@scripts/install-system-deps

$(STAMP): requirements.txt setup.cfg pyproject.toml
	@test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install -q -r requirements.txt
	$(VPY) -m pip install -q --no-deps --no-build-isolation -e .
	@rm -f $(VENV)/.installed-*
	@touch $@

venv: deps $(STAMP)

# The agent in the foreground with its embedded defaults (private OVS, native functions).
run: venv
	$(VENV)/bin/composer-agent $(if $(CONFIG),--config $(CONFIG))

# A demo node in network namespaces (two hosts behind LSI-0's eth1 and eth2) and the agent
# on it until Ctrl-C, which removes it all; README.md, "Try it", goes on from there.
demo: venv
	$(VENV)/bin/composer-agent demo $(DEMO_ARGS)

# The whole suite: unit (no root), integration (root, real daemons), e2e (NETCONF + traffic).
# The tests start a dockerd of their own (tests/dockerlab.py) and build the images they run.
test: venv guest libvirtd
	$(VPY) -m pytest -p no:cacheprovider $(PYTEST_ARGS) tests

# Regenerate the pyangbind classes in bindings/ from yang/.
bindings: venv
	$(VPY) -m agent.tools.bindings generate

check-bindings: venv
	$(VPY) -m agent.tools.bindings check

lint-yang: venv
	$(VPY) -m agent.tools.bindings lint

# Pack the native function packages (nsf/<name>/) into nsf/dist/<name>.tgz, reproducibly.
nsf: venv
	$(VPY) -m nsf.packages nsf/dist

# Build the container images of the function packages that have a docker.json into
# nsf/dist/<name>.docker.tar (docker load archives; the agent and the tests build their own).
images: venv
	$(VPY) -m nsf.images nsf/dist

# The kvm functions' tiny guest (a Debian cloud kernel, a busybox initramfs) in nsf/dist/guest;
# rebuilt only when its inputs changed.
guest: venv
	$(VPY) -m nsf.guest nsf/dist/guest

# libvirtd (and virtlogd) for the kvm functions, started when they do not answer.
libvirtd: deps
	@scripts/start-libvirtd

clean:
	rm -rf $(VENV) build *.egg-info nsf/dist
