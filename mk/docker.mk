# Container targets (docker, or podman when no Docker engine answers): see docs/docker.md.
# On the project's machines, first: source ../shared/tools/podman-env.sh
DOCKER_IMAGE ?= drug-classifier:latest
DOCKER_PORT ?= 8000
HADOLINT ?= $(VENV)/bin/hadolint

.PHONY: docker-build
docker-build: ## Build the serving image (trains and exports the model inside; docker or podman)
	IMAGE=$(DOCKER_IMAGE) scripts/docker.sh build

.PHONY: docker-run
docker-run: ## Run the image on 127.0.0.1:8000 (DOCKER_PORT=...; ARTIFACTS=dir serves a local model)
	IMAGE=$(DOCKER_IMAGE) PORT=$(DOCKER_PORT) scripts/docker.sh run

.PHONY: docker-stop
docker-stop: ## Stop and remove the container started by docker-run
	scripts/docker.sh stop

.PHONY: docker-test
docker-test: ## Build the image and test it: health, a known prediction, non-root, no sklearn, size
	IMAGE=$(DOCKER_IMAGE) scripts/docker.sh test

.PHONY: hadolint
hadolint: ## Lint the Dockerfile with hadolint (settings in .hadolint.yaml)
	$(HADOLINT) Dockerfile
