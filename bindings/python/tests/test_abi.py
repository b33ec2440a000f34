"""The binding mirrors the header, and the library exports exactly the header's functions."""

import ctypes
import os
import re
import shutil
import subprocess

import pytest

import bdlcore
from bdlcore import _lib

from _support import HEADER, PACKAGE_ROOT


def header_text():
    with open(HEADER, encoding="utf-8") as f:
        return f.read()


def header_code():
    """The header without comments."""
    text = re.sub(r"/\*.*?\*/", " ", header_text(), flags=re.S)
    return re.sub(r"//[^\n]*", " ", text)


def header_functions():
    """Names of the functions the header declares, in order."""
    names = []
    for declaration in header_code().split(";"):
        match = re.search(r"\b(bdl_\w+)\s*\(", declaration)
        if match and "BDL_API" in declaration:
            names.append(match.group(1))
    return names


def header_enum_constants():
    return {name: int(value) for name, value in re.findall(r"\b(BDL_[A-Z0-9_]+)\s*=\s*(-?\d+)", header_code())}


def header_macros():
    return {name: int(value) for name, value in re.findall(r"#define\s+(BDL_[A-Z0-9_]+)\s+(\d+)\b", header_code())}


def exported_functions(path):
    output = subprocess.run(["nm", "-D", "--defined-only", path], check=True, capture_output=True, text=True).stdout
    return {fields[2] for fields in (line.split() for line in output.splitlines()) if len(fields) == 3 and fields[2].startswith("bdl_")}


def test_header_parse_is_not_empty():
    names = header_functions()
    assert len(names) == len(set(names)), "a function is declared twice"
    assert {"bdl_version_string", "bdl_kron_logdet", "bdl_kron_factor_free", "bdl_blas_info"} <= set(names)


def test_python_declarations_match_header_in_order():
    header = header_functions()
    declared = list(_lib.DECLARED_FUNCTIONS)
    missing = [n for n in header if n not in declared]
    extra = [n for n in declared if n not in header]
    assert not missing and not extra, f"declared in the header but not in _lib.py: {missing}; in _lib.py but not in the header: {extra}"
    assert declared == header, f"_lib.py order {declared} differs from header order {header}"


@pytest.mark.skipif(shutil.which("nm") is None, reason="nm (binutils) is not installed")
def test_library_exports_match_header():
    header = set(header_functions())
    exported = exported_functions(_lib.library_path)
    missing = sorted(header - exported)
    extra = sorted(exported - header)
    assert not missing and not extra, (
        f"{_lib.library_path}: header functions not exported: {missing}; exported bdl_ symbols not in the header: {extra}"
    )


#: The header's non-status enum groups, by name prefix, and their tables in _lib.
CONSTANT_GROUPS = {
    "BDL_BLAS_CORE_": _lib.BLAS_CORE_CONSTANTS,
    "BDL_LAYER_": _lib.LAYER_CONSTANTS,
    "BDL_LIKELIHOOD_": _lib.LIKELIHOOD_CONSTANTS,
    "BDL_OPTIMIZER_": _lib.OPTIMIZER_CONSTANTS,
    "BDL_SCHEDULE_": _lib.SCHEDULE_CONSTANTS,
    "BDL_CURVATURE_": _lib.CURVATURE_CONSTANTS,
    "BDL_FISHER_": _lib.FISHER_CONSTANTS,
    "BDL_KFAC_": _lib.KFAC_CONSTANTS,
    "BDL_LAPLACE_": _lib.LAPLACE_CONSTANTS,
    "BDL_SUBSET_": _lib.SUBSET_CONSTANTS,
    "BDL_PRIOR_": _lib.PRIOR_CONSTANTS,
    "BDL_LINK_": _lib.LINK_CONSTANTS,
    "BDL_INFLUENCE_": _lib.INFLUENCE_CONSTANTS,
    "BDL_MEASURE_": _lib.MEASURE_CONSTANTS,
    "BDL_PRUNING_": _lib.PRUNING_CONSTANTS,
    "BDL_OBJECTIVE_": _lib.OBJECTIVE_CONSTANTS,
}


def test_status_constants_match_header():
    constants = header_enum_constants()
    header_statuses = {k: v for k, v in constants.items() if not k.startswith(tuple(CONSTANT_GROUPS))}
    assert header_statuses == _lib.STATUS_CONSTANTS
    assert header_statuses["BDL_OK"] == 0
    for prefix, table in CONSTANT_GROUPS.items():
        assert {k: v for k, v in constants.items() if k.startswith(prefix)} == table, prefix
        for name, value in table.items():
            assert getattr(_lib, name) == value, name
    for name, value in header_statuses.items():
        assert getattr(_lib, name) == value
        if name != "BDL_OK":
            assert bdlcore.Status[name[len("BDL_"):]] == value


def test_status_strings_are_distinct_and_non_empty():
    texts = {value: bdlcore.status_string(value) for value in _lib.STATUS_CONSTANTS.values()}
    assert all(texts.values()), texts
    assert len(set(texts.values())) == len(texts), f"duplicate status texts: {texts}"
    assert "unknown status" not in texts.values()
    for unknown in (len(texts), -1, 2**31 - 1, -(2**31)):
        assert bdlcore.status_string(unknown) == "unknown status"


def test_version_matches_header_and_pyproject():
    macros = header_macros()
    major, minor, patch = macros["BDL_VERSION_MAJOR"], macros["BDL_VERSION_MINOR"], macros["BDL_VERSION_PATCH"]
    assert (_lib.BDL_VERSION_MAJOR, _lib.BDL_VERSION_MINOR, _lib.BDL_VERSION_PATCH) == (major, minor, patch)
    assert bdlcore.__version__ == f"{major}.{minor}.{patch}"
    assert bdlcore.version_number() == major * 10000 + minor * 100 + patch
    with open(os.path.join(PACKAGE_ROOT, "pyproject.toml"), encoding="utf-8") as f:
        declared = re.search(r'^version\s*=\s*"([^"]+)"', f.read(), flags=re.M).group(1)
    assert declared == bdlcore.__version__


def header_struct_fields(name):
    match = re.search(r"typedef\s+struct\s+" + name + r"\s*\{(.*?)\}\s*" + name + r"\s*;", header_code(), flags=re.S)
    assert match, f"struct {name} not found in the header"
    return re.findall(r"(\w+)\s+(\w+)\s*(?:\[(\d+)\])?\s*;", match.group(1))


CTYPES_OF = {"uint32_t": ctypes.c_uint32, "int32_t": ctypes.c_int32, "int64_t": ctypes.c_int64, "double": ctypes.c_double}


def test_blas_info_struct_mirrors_header():
    header = header_struct_fields("bdl_blas_info_t")
    fields = _lib.bdl_blas_info_t._fields_
    assert [name for _, name, _ in header] == [name for name, _ in fields]
    for (ctype, name, length), (_, pytype) in zip(header, fields):
        if length:
            assert ctype == "char" and issubclass(pytype, ctypes.Array) and pytype._type_ is ctypes.c_char, name
            assert pytype._length_ == int(length), name
        else:
            assert pytype is CTYPES_OF[ctype], name


def header_struct_declarations(name):
    """(type, name, is_pointer) of each field of struct `name`, comma lists expanded, `const` dropped."""
    match = re.search(r"typedef\s+struct\s+" + name + r"\s*\{(.*?)\}\s*" + name + r"\s*;", header_code(), flags=re.S)
    assert match, f"struct {name} not found in the header"
    fields = []
    for declaration in match.group(1).split(";"):
        declaration = re.sub(r"\bconst\b", " ", declaration).strip()
        if not declaration:
            continue
        head = re.match(r"(\w+)\s*(.*)", declaration, flags=re.S)
        ctype, names = head.group(1), head.group(2)
        for item in names.split(","):
            item = item.strip()
            fields.append((ctype, item.lstrip("* "), item.startswith("*")))
    return fields


CTYPES_OF_FIELD = dict(CTYPES_OF, uint64_t=ctypes.c_uint64)


@pytest.mark.parametrize(
    "struct",
    [_lib.bdl_layer_spec, _lib.bdl_train_params, _lib.bdl_train_progress, _lib.bdl_curvature_params, _lib.bdl_influence_params,
     _lib.bdl_layer_data],
)
def test_network_structs_mirror_header(struct):
    header = header_struct_declarations(struct.__name__)
    fields = struct._fields_
    assert [name for _, name, _ in header] == [name for name, _ in fields]
    for (ctype, name, is_pointer), (_, pytype) in zip(header, fields):
        expected = ctypes.POINTER(CTYPES_OF_FIELD[ctype]) if is_pointer else CTYPES_OF_FIELD[ctype]
        assert pytype is expected, f"{struct.__name__}.{name}: {pytype} vs {ctype}{'*' if is_pointer else ''}"


def test_progress_callback_type_matches_header():
    match = re.search(r"typedef\s+(\w+)\s*\(\s*\*\s*bdl_progress_fn\s*\)\s*\(([^)]*)\)", header_code())
    assert match, "bdl_progress_fn not found"
    assert match.group(1) == "int32_t"
    assert re.sub(r"\s+", " ", match.group(2)).strip() == "const bdl_train_progress *progress, void *user_data"
    assert _lib.BDL_PROGRESS_FN._restype_ is ctypes.c_int32
    assert _lib.BDL_PROGRESS_FN._argtypes_ == (ctypes.POINTER(_lib.bdl_train_progress), ctypes.c_void_p)


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler")
@pytest.mark.parametrize(
    "struct",
    [
        _lib.bdl_blas_info_t, _lib.bdl_layer_spec, _lib.bdl_train_params, _lib.bdl_train_progress, _lib.bdl_curvature_params,
        _lib.bdl_influence_params, _lib.bdl_layer_data, _lib.bdl_laplace_params, _lib.bdl_evidence_optimum,
        _lib.bdl_marglik_params, _lib.bdl_marglik_progress, _lib.bdl_layer_sparsity,
    ],
)
def test_struct_layout_matches_c_compiler(tmp_path, struct):
    """sizeof and every offsetof as a C compiler lays the header's struct out."""
    c_name = struct.__name__
    fields = [name for name, _ in struct._fields_]
    source = tmp_path / "layout.c"
    source.write_text(
        "#include <stdio.h>\n#include <stddef.h>\n#include \"bdlcore.h\"\nint main(void) {\n"
        f'  printf("size %zu\\n", sizeof({c_name}));\n'
        + "".join(f'  printf("{f} %zu\\n", offsetof({c_name}, {f}));\n' for f in fields)
        + "  return 0;\n}\n"
    )
    binary = tmp_path / "layout"
    subprocess.run(["cc", "-I", os.path.dirname(HEADER), str(source), "-o", str(binary)], check=True)
    layout = dict(line.split() for line in subprocess.run([str(binary)], check=True, capture_output=True, text=True).stdout.splitlines())
    assert int(layout["size"]) == ctypes.sizeof(struct), c_name
    for name in fields:
        assert int(layout[name]) == getattr(struct, name).offset, f"{c_name}.{name}"
