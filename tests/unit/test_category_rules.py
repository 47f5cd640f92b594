"""Category rules (server/domain/categories.py): attribute definitions and values, the
escalation policy, and the standard seed file."""
import pytest

from server.domain.categories import (
    DEFAULT_POLICY, KINDS, category_errors, clean_attribute_values, effective_policy, normalize_attribute_definitions,
    stage_minutes, validate_attribute_definitions, validate_policy,
)
from server.domain.incidents import PRIORITIES
from server.domain.people import DEPARTMENT_KINDS
from server.domain.territory import LEVELS, level_rank
from server.seed import read_categories

DAMAGE = {"code": "damage", "datatype": "singlevaluelist", "required": True, "label": "损坏情况", "label_en": "Damage",
          "values": [{"key": "missing", "name": "缺失", "name_en": "Missing"},
                     {"key": "broken", "name": "破损", "name_en": "Broken"},
                     {"key": "displaced", "name": "移位", "name_en": "Displaced"}]}
GOODS = {"code": "goods", "datatype": "multivaluelist", "label": "经营品类", "label_en": "Goods",
         "values": [{"key": "fruit", "name": "果蔬", "name_en": "Fruit"},
                    {"key": "food", "name": "熟食", "name_en": "Food"},
                    {"key": "other", "name": "其他", "name_en": "Other"}]}
PARTIES = {"code": "parties_count", "datatype": "number", "required": True, "label": "当事人数",
           "label_en": "Number of parties", "min": 2, "max": 100}
NOTE = {"code": "note", "datatype": "string", "label": "备注", "label_en": "Note", "max_length": 10}
STORY = {"code": "story", "datatype": "text", "label": "经过", "label_en": "What happened"}
SEEN = {"code": "seen_at", "datatype": "datetime", "label": "发现时间", "label_en": "Seen at"}
ALL = [DAMAGE, GOODS, PARTIES, NOTE, STORY, SEEN]


def _clean(values, defs=ALL):
    return clean_attribute_values(normalize_attribute_definitions(defs), values)


# --- attribute definitions --------------------------------------------------------------

def test_definitions_of_every_datatype_are_valid():
    assert validate_attribute_definitions(ALL) == []
    assert validate_attribute_definitions([]) == []


def test_normalised_definitions_spell_out_their_defaults():
    normal = {d["code"]: d for d in normalize_attribute_definitions(ALL)}
    assert normal["goods"]["required"] is False and normal["goods"]["order"] == 2
    assert normal["note"]["max_length"] == 10 and normal["story"]["max_length"] == 2000
    assert "max_length" not in normal["parties_count"] and "values" not in normal["seen_at"]
    assert validate_attribute_definitions(list(normal.values())) == []


@pytest.mark.parametrize("bad, fragment", [
    ({**NOTE, "code": "Note"}, "code must be"),
    ({**NOTE, "code": "1note"}, "code must be"),
    ({**NOTE, "code": "n" * 41}, "code must be"),
    ({**NOTE, "datatype": "color"}, "datatype must be"),
    ({**NOTE, "required": "yes"}, "required must be"),
    ({**NOTE, "label": "  "}, "label must be"),
    ({k: v for k, v in NOTE.items() if k != "label_en"}, "label_en must be"),
    ({**NOTE, "order": True}, "order must be"),
    ({**NOTE, "order": -1}, "order must be"),
    ({**NOTE, "values": [{"key": "a", "name": "甲", "name_en": "A"}]}, "values are only for"),
    ({**NOTE, "min": 1}, "min is only for number"),
    ({**NOTE, "max_length": 0}, "max_length must be"),
    ({**NOTE, "max_length": 5000}, "max_length must be"),
    ({**PARTIES, "max_length": 10}, "max_length is only for"),
    ({**PARTIES, "min": 5, "max": 1}, "min is greater than max"),
    ({**PARTIES, "min": True}, "min must be a finite number"),
    ({**PARTIES, "max": float("inf")}, "max must be a finite number"),
    ({**DAMAGE, "values": []}, "values must be a non-empty list"),
    ({k: v for k, v in DAMAGE.items() if k != "values"}, "values must be a non-empty list"),
    ({**DAMAGE, "values": [{"key": "a", "name": "甲", "name_en": "A"}, {"key": "a", "name": "乙", "name_en": "B"}]},
     "value key 'a' is repeated"),
    ({**DAMAGE, "values": [{"key": "A B", "name": "甲", "name_en": "A"}]}, "key must be"),
    ({**DAMAGE, "values": [{"key": "a", "name": "甲"}]}, "name_en must be"),
    ({**DAMAGE, "values": [{"key": "a", "name": "甲", "name_en": "A", "colour": "red"}]}, "unknown fields"),
    ({**NOTE, "colour": "red"}, "unknown fields"),
    ("note", "must be an object"),
])
def test_bad_definitions_are_explained(bad, fragment):
    errors = validate_attribute_definitions([bad])
    assert any(fragment in message for message in errors), errors


def test_repeated_attribute_codes_are_refused():
    errors = validate_attribute_definitions([NOTE, {**STORY, "code": "note"}])
    assert errors == ["attributes[1] (note): the code is repeated."]


def test_definitions_must_be_a_list():
    assert validate_attribute_definitions({"code": "note"}) == ["attributes must be a list."]


# --- attribute values ------------------------------------------------------------------

def test_valid_values_of_every_datatype_are_cleaned():
    cleaned, errors = _clean({"damage": "missing", "goods": ["other", "fruit"], "parties_count": 3,
                              "note": "  门口  ", "story": "两户因漏水争执", "seen_at": "2024-05-01T08:30:00+08:00"})
    assert errors == {}
    assert cleaned == {"damage": "missing", "goods": ["fruit", "other"], "parties_count": 3, "note": "门口",
                       "story": "两户因漏水争执", "seen_at": "2024-05-01T00:30:00+00:00"}


def test_numbers_keep_their_type_and_bounds_are_inclusive():
    assert _clean({"damage": "broken", "parties_count": 2.5})[0]["parties_count"] == 2.5
    assert _clean({"damage": "broken", "parties_count": 100})[1] == {}
    assert _clean({"damage": "broken", "parties_count": 2})[1] == {}


def test_a_z_suffix_is_a_zone():
    assert _clean({"damage": "broken", "parties_count": 2, "seen_at": "2024-05-01T08:30:00Z"})[0]["seen_at"] == \
        "2024-05-01T08:30:00+00:00"


@pytest.mark.parametrize("values, code, fragment", [
    ({"parties_count": 2}, "damage", "Required."),
    ({"damage": None, "parties_count": 2}, "damage", "Required."),
    ({"damage": "  ", "parties_count": 2}, "damage", "Required."),
    ({"damage": "melted", "parties_count": 2}, "damage", "Must be one of missing, broken, displaced."),
    ({"damage": ["missing"], "parties_count": 2}, "damage", "Must be one of"),
    ({"damage": "missing"}, "parties_count", "Required."),
    ({"damage": "missing", "parties_count": 1}, "parties_count", "Must be at least 2."),
    ({"damage": "missing", "parties_count": 101}, "parties_count", "Must be at most 100."),
    ({"damage": "missing", "parties_count": True}, "parties_count", "Must be a finite number."),
    ({"damage": "missing", "parties_count": "3"}, "parties_count", "Must be a finite number."),
    ({"damage": "missing", "parties_count": float("nan")}, "parties_count", "Must be a finite number."),
    ({"damage": "missing", "parties_count": 2, "note": "x" * 11}, "note", "At most 10 characters."),
    ({"damage": "missing", "parties_count": 2, "note": 5}, "note", "Must be a string."),
    ({"damage": "missing", "parties_count": 2, "story": "x" * 2001}, "story", "At most 2000 characters."),
    ({"damage": "missing", "parties_count": 2, "seen_at": "2024-05-01T08:30:00"}, "seen_at", "time zone"),
    ({"damage": "missing", "parties_count": 2, "seen_at": "2024-05-01"}, "seen_at", "time zone"),
    ({"damage": "missing", "parties_count": 2, "seen_at": "yesterday"}, "seen_at", "ISO 8601"),
    ({"damage": "missing", "parties_count": 2, "seen_at": 1714520000}, "seen_at", "ISO 8601"),
    ({"damage": "missing", "parties_count": 2, "goods": []}, "goods", "non-empty list"),
    ({"damage": "missing", "parties_count": 2, "goods": "fruit"}, "goods", "non-empty list"),
    ({"damage": "missing", "parties_count": 2, "goods": ["fruit", "fruit"]}, "goods", "must not repeat"),
    ({"damage": "missing", "parties_count": 2, "goods": ["fruit", "cars"]}, "goods", "Every item must be one of"),
    ({"damage": "missing", "parties_count": 2, "colour": "red"}, "colour", "Unknown attribute."),
])
def test_invalid_values_are_field_errors_by_code(values, code, fragment):
    cleaned, errors = _clean(values)
    assert list(errors) == [code], errors
    assert fragment in errors[code][0]
    assert code not in cleaned


def test_no_values_are_fine_when_nothing_is_required():
    assert _clean(None, [NOTE, GOODS]) == ({}, {})
    assert _clean({}, [NOTE, GOODS]) == ({}, {})


def test_values_must_be_an_object():
    assert _clean(["missing"])[1] == {"attributes": ["Must be an object keyed by attribute code."]}


# --- escalation policy -----------------------------------------------------------------

def test_the_default_policy_is_valid_from_every_level_up_to_district():
    for level in ("grid", "community", "street", "district"):
        assert validate_policy({}, level) == []
    assert validate_policy(None, "grid") == []


def test_a_city_level_category_needs_a_city_top_level():
    assert validate_policy({}, "city") == ["top_level district is below the start level city."]
    assert validate_policy({"top_level": "city"}, "city") == []


def test_levels_must_cover_the_start_level_up_to_the_top_level():
    policy = {"top_level": "city", "levels": {"street": {"ack_minutes": 15, "resolve_minutes": 240},
                                              "city": {"ack_minutes": 30, "resolve_minutes": 720}}}
    assert validate_policy(policy, "street") == [
        "levels must cover every level from street up to city; missing: district."]
    errors = validate_policy(policy, "grid")
    assert errors == ["levels must cover every level from grid up to city; missing: district, community, grid."]


@pytest.mark.parametrize("policy, fragment", [
    ({"time_basis": "lunar"}, "time_basis must be one of natural, working."),
    ({"yellow_ratio": 0}, "yellow_ratio must be"),
    ({"yellow_ratio": 1}, "yellow_ratio must be"),
    ({"yellow_ratio": True}, "yellow_ratio must be"),
    ({"yellow_ratio": "0.5"}, "yellow_ratio must be"),
    ({"top_level": "planet"}, "top_level must be one of"),
    ({"levels": {}}, "levels must be a non-empty object"),
    ({"levels": {"grid": {"ack_minutes": 0, "resolve_minutes": 10}}}, "levels.grid.ack_minutes must be"),
    ({"levels": {"grid": {"ack_minutes": 60, "resolve_minutes": 60}}}, "must be greater than ack_minutes"),
    ({"levels": {"grid": {"ack_minutes": 60, "resolve_minutes": 1.5}}}, "levels.grid.resolve_minutes must be"),
    ({"levels": {"grid": {"ack_minutes": 60}}}, "levels.grid.resolve_minutes must be"),
    ({"levels": {"grid": {"ack_minutes": 1, "resolve_minutes": 10, "extra": 1}}}, "unknown fields"),
    ({"levels": {"moon": {"ack_minutes": 1, "resolve_minutes": 10}}}, "unknown level 'moon'"),
    ({"levels": {"grid": {"ack_minutes": 1, "resolve_minutes": 10**9}}}, "resolve_minutes must be"),
    ({"escalate": True}, "Unknown fields"),
])
def test_bad_policies_are_explained(policy, fragment):
    errors = validate_policy(policy, "grid")
    assert any(fragment in message for message in errors), errors


def test_the_effective_policy_fills_the_defaults_and_takes_levels_whole():
    assert effective_policy({}) == DEFAULT_POLICY
    assert effective_policy(None) == DEFAULT_POLICY
    custom = effective_policy({"yellow_ratio": 0.5, "levels": {"grid": {"ack_minutes": 10, "resolve_minutes": 60}}})
    assert custom["time_basis"] == "natural" and custom["yellow_ratio"] == 0.5 and custom["top_level"] == "district"
    assert custom["levels"] == {"grid": {"ack_minutes": 10, "resolve_minutes": 60}}


def test_the_default_limits_grow_up_the_levels():
    stages = [stage_minutes({}, level) for level in reversed(LEVELS)]
    assert stages[0] == (60, 1440) and stages[-1] == (480, 10080)
    assert all(a[1] < b[1] for a, b in zip(stages, stages[1:]))


def test_stage_minutes_falls_back_to_the_nearest_defined_level():
    policy = {"top_level": "city", "levels": {"street": {"ack_minutes": 15, "resolve_minutes": 240},
                                              "city": {"ack_minutes": 30, "resolve_minutes": 720}}}
    assert stage_minutes(policy, "street") == (15, 240)
    assert stage_minutes(policy, "grid") == (15, 240)
    assert stage_minutes(policy, "community") == (15, 240)
    assert stage_minutes(policy, "district") == (30, 720)  # a tie: the higher level
    with pytest.raises(ValueError):
        stage_minutes(policy, "planet")


# --- the standard seed file ------------------------------------------------------------

@pytest.fixture(scope="module")
def seed():
    return read_categories()


def test_the_seed_has_at_least_8_groups_and_45_leaves(seed):
    groups = [row for row in seed if "parent_code" not in row]
    leaves = [row for row in seed if "parent_code" in row]
    assert len(groups) >= 8 and len(leaves) >= 45
    named = {"市容环境", "公共设施", "道路交通", "园林绿化", "安全隐患", "矛盾纠纷", "社会治安", "民生服务", "生态环境",
             "施工管理"}
    assert named <= {g["name"] for g in groups}


def test_every_seed_category_is_valid(seed):
    assert {row["code"]: category_errors({k: v for k, v in row.items() if k != "parent_code"})
            for row in seed} == {row["code"]: {} for row in seed}


def test_seed_codes_are_unique_and_leaves_hang_under_their_groups(seed):
    codes = [row["code"] for row in seed]
    assert len(codes) == len(set(codes))
    groups = {row["code"] for row in seed if "parent_code" not in row}
    for row in seed:
        if "parent_code" in row:
            assert row["parent_code"] in groups and row["code"].startswith(row["parent_code"]), row["code"]
            assert len(row["code"]) == 4
        else:
            assert len(row["code"]) == 2


def test_every_seed_leaf_is_complete(seed):
    for row in (r for r in seed if "parent_code" in r):
        assert row["kind"] in KINDS and row["default_priority"] in PRIORITIES and row["start_level"] in LEVELS
        assert row["department_kind"] in DEPARTMENT_KINDS
        assert isinstance(row["requires_after_photo"], bool) and isinstance(row["public"], bool)
        assert row["keywords"] and row["name"] and row["name_en"]
        assert validate_attribute_definitions(row.get("attributes", [])) == []
        assert validate_policy(row.get("policy", {}), row["start_level"]) == []


def test_the_seed_follows_the_field_practice(seed):
    by_name = {row["name"]: row for row in seed}
    gas = by_name["燃气泄漏"]
    assert gas["default_priority"] == "urgent" and gas["start_level"] == "street"
    assert effective_policy(gas["policy"])["top_level"] == "city"
    assert stage_minutes(gas["policy"], "street")[1] < stage_minutes({}, "street")[1]
    neighbours = by_name["邻里纠纷"]
    assert neighbours["start_level"] == "grid" and not neighbours["requires_after_photo"]
    parties = next(a for a in neighbours["attributes"] if a["code"] == "parties_count")
    assert parties["datatype"] == "number" and parties["min"] == 2
    assert level_rank(by_name["土地纠纷"]["start_level"]) <= level_rank("community")
    assert level_rank(by_name["劳动争议"]["start_level"]) <= level_rank("community")
    manhole = next(a for a in by_name["井盖破损"]["attributes"] if a["code"] == "damage")
    assert [v["key"] for v in manhole["values"]] == ["missing", "broken", "displaced"]
    assert next(a for a in by_name["占道经营"]["attributes"] if a["code"] == "goods")["datatype"] == "multivaluelist"
    assert any(a["code"] == "area_m2" for a in by_name["违章搭建"]["attributes"])
    police = [row for row in seed if row.get("parent_code") == by_name["社会治安"]["code"]]
    assert police and not all(row["public"] for row in police)
    datatypes = {a["datatype"] for row in seed for a in row.get("attributes", [])}
    assert datatypes == {"string", "number", "datetime", "text", "singlevaluelist", "multivaluelist"}


def test_the_seed_codes_names_and_leaf_datatypes_cover_every_kind(seed):
    assert {row["kind"] for row in seed if "parent_code" in row} == set(KINDS)
