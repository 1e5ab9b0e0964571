"""The build recipe: stages, the v1 one-stage form, and the per-plugin build file's defines."""

import pytest

from pds_log.core.errors import FormatError
from pds_log.core.recipe import BuildRecipe, parse_build_file, plugin_defines


def test_default_recipe_is_pqucs_two_stage_pipeline():
    stages = BuildRecipe().stages("dir/x.o", defines=("DISABLE_PROTOOP_PRINTF", "N=2"))
    assert stages == [
        ["clang", "-DDISABLE_PROTOOP_PRINTF", "-DN=2", "-I", ".", "-O2", "-fno-gnu-inline-asm", "-emit-llvm",
         "-c", "dir/x.c", "-o", "dir/x.o.bc"],
        ["llc", "-march=bpf", "-filetype=obj", "dir/x.o.bc", "-o", "dir/x.o"]]
    assert BuildRecipe().stages("x.o", "x.o.rebuilt", ir="/tmp/i.bc")[1] == [
        "llc", "-march=bpf", "-filetype=obj", "/tmp/i.bc", "-o", "x.o.rebuilt"]
    assert [p for p, _ in BuildRecipe().tools()] == ["clang", "llc"]


def test_ir_for_termination_is_the_first_stage_as_text():
    argv = BuildRecipe().ir_argv("x.o", "x.ll", ("A",))
    assert argv == ["clang", "-DA", "-I", ".", "-O2", "-fno-gnu-inline-asm", "-g", "-emit-llvm", "-S", "-c", "x.c",
                    "-o", "x.ll"]


def test_a_recipe_without_llc_is_one_compiler_call():
    recipe = BuildRecipe.from_obj({"compiler": "clang", "flags": ["-target", "bpf", "-O2"]})
    assert recipe.llc is None and recipe.stages("x.o") == [["clang", "-target", "bpf", "-O2", "-c", "x.c", "-o", "x.o"]]
    assert BuildRecipe.from_obj(recipe.to_obj()) == recipe
    assert BuildRecipe.from_obj(BuildRecipe().to_obj()) == BuildRecipe()
    with pytest.raises(FormatError, match="expected keys"):
        BuildRecipe.from_obj({"compiler": "clang", "shell": "sh"})
    with pytest.raises(FormatError, match="llc_flags must be"):
        BuildRecipe.from_obj({"llc": "llc", "llc_flags": "-march=bpf"})


@pytest.mark.parametrize("define", ["DISABLE_PROTOOP_PRINTF", "ACK_DELAY_MULT=2", "X=1.5e3", "_A=b-c+d", "E="])
def test_defines_of_the_allowed_form(define):
    assert parse_build_file({"defines": [define]}) == (define,)


@pytest.mark.parametrize("define", ["-I/", "A B", "A=$(id)", "A;B", "1A", "A=x/y", "A=\"q\"", "", "A=" + "x" * 65,
                                    "-fplugin=evil.so", 7, None])
def test_anything_else_is_refused(define):
    with pytest.raises(FormatError, match="pds-build.yaml"):
        parse_build_file({"defines": [define]})


def test_build_file_shape():
    assert plugin_defines({}) == ()
    assert plugin_defines({"pds-build.yaml": b"defines: [A, B=2]\n"}) == ("A", "B=2")
    for bad in (b"defines: A", b"flags: [-O0]", b"- A", b"defines: [" + b"A, " * 70 + b"A]", b"\xff"):
        with pytest.raises(FormatError):
            plugin_defines({"pds-build.yaml": bad})
