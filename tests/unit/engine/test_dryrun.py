"""composer-agent plan: the steps a commit would run, printed without touching the node."""

from pathlib import Path

from agent.cli import main

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def test_plan_prints_the_steps_of_a_first_deploy(tmp_path, capsys):
    config = tmp_path / "agent.toml"
    config.write_text('[state]\ndir = "%s"\n[lsi0]\ninterfaces = ["eth1", "eth2"]\n' % tmp_path)
    assert main(["plan", "-c", str(config), str(EXAMPLES / "firewall-chain.xml")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("  1. create-lsi chain/cncg")
    assert any("create-function chain/" in line and "[native-firewall, native, 2 ports]" in line
               for line in out)
    # LSI-0: the two SAP rules and the two links' return flows; graph-LSI: two rules, two
    # links' forward flows
    assert out[-2] == "       - apply-flows lsi0  [+4 flows, -0]"
    assert out[-1].endswith("  [+4 flows, -0]")


def test_plan_refuses_what_the_node_cannot_deploy(tmp_path, capsys):
    config = tmp_path / "agent.toml"
    config.write_text('[state]\ndir = "%s"\n' % tmp_path)
    assert main(["plan", "-c", str(config), str(EXAMPLES / "firewall-chain.xml")]) == 1
    err = capsys.readouterr().err
    assert "SAP lan uses interface eth1, which is not an interface of LSI-0" in err
