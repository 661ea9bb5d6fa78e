# The two commands of the README's quick start, plus the benchmark.
.PHONY: setup demo test bench clean

setup:
	@bash scripts/setup.sh

demo: setup
	.venv/bin/opsproof demo

test: setup
	.venv/bin/python -m pytest -c tests/pytest.ini tests

bench: setup
	@bash scripts/setup.sh "curl curl" "jq jq" "psql postgresql-client" "redis-cli redis-tools"
	.venv/bin/python bench/daily_check.py

clean:
	-.venv/bin/opsproof sandbox down
	rm -rf .venv reports/*/ .opsproof
