"""Incident categories over HTTP: the seeded standard set, reading for everyone,
changes by administrators only, the domain's 422s, conflicts and retirement."""
import json

import pytest
from sqlalchemy import func, select

from server.models import Category
from server.seed import read_categories
from server.services.categories import seed_categories
from tests.builders import build_tree, standard_categories

CATEGORIES = "/api/v1/categories"
ROLES = ("admin", "city", "district", "street", "community", "grid_worker", "department")
SEED = read_categories()
GROUPS = [row for row in SEED if "parent_code" not in row]
LEAVES = [row for row in SEED if "parent_code" in row]


def _count(db):
    db.session.expire_all()
    return db.session.scalar(select(func.count()).select_from(Category))


def _assert_error(response, status, code):
    assert response.status_code == status, response.text
    assert response.json()["code"] == code, response.text


def _group(**overrides):
    body = {"code": "99", "name": "试点事项", "name_en": "Pilot matters", "kind": "event"}
    body.update(overrides)
    return body


def _leaf(parent_id, **overrides):
    body = {"code": "9901", "parent_id": parent_id, "name": "共享单车堆积", "name_en": "Piles of shared bikes",
            "kind": "event", "default_priority": "low", "department_kind": "urban_management",
            "requires_after_photo": True, "keywords": ["共享单车", "shared bikes"],
            "attributes": [{"code": "bikes", "datatype": "number", "required": True, "label": "车辆数",
                            "label_en": "Number of bikes", "min": 1, "max": 1000},
                           {"code": "brand", "datatype": "multivaluelist", "label": "品牌", "label_en": "Brand",
                            "values": [{"key": "meituan", "name": "美团", "name_en": "Meituan"},
                                       {"key": "hellobike", "name": "哈啰", "name_en": "Hellobike"}]}]}
    body.update(overrides)
    return body


def _codes(response):
    assert response.status_code == 200, response.text
    return [c["code"] for c in response.json()["items"]]


# --- the standard set ------------------------------------------------------------------

def test_seeding_twice_creates_once_then_changes_nothing(http, db):
    first = seed_categories()
    assert first == {"groups": len(GROUPS), "leaves": len(LEAVES), "created": len(SEED), "updated": 0, "unchanged": 0}
    versions = dict(db.session.execute(select(Category.code, Category.version)).all())
    second = seed_categories()
    assert second == {**first, "created": 0, "unchanged": len(SEED)}
    db.session.expire_all()
    assert dict(db.session.execute(select(Category.code, Category.version)).all()) == versions


def test_the_seeded_list_puts_each_group_before_its_leaves(http, client_for):
    tree = build_tree()
    standard_categories()
    body = client_for(tree["grid_worker"]).get(CATEGORIES, params={"page_size": 500}).json()
    assert body["total"] == len(SEED)
    assert [c["code"] for c in body["items"]] == [row["code"] for row in SEED]
    group, leaf = body["items"][0], body["items"][1]
    assert group["is_leaf"] is False and group["parent"] is None
    assert leaf["parent"] == {"id": group["id"], "code": group["code"], "name": group["name"],
                              "name_en": group["name_en"], "kind": group["kind"]}


def test_a_category_comes_with_labels_attributes_and_its_effective_policy(http, client_for):
    tree = build_tree()
    cats = standard_categories()
    manhole = client_for(tree["community"]).get(f"{CATEGORIES}/{cats['0201'].id}").json()
    assert manhole["name"] == "井盖破损" and manhole["kind"] == "facility"
    assert manhole["kind_label"] == {"zh": "部件", "en": "Public facility"}
    assert manhole["priority_label"] == {"zh": "较急", "en": "High"}
    assert manhole["start_level_label"] == {"zh": "网格", "en": "Grid cell"}
    assert manhole["department_kind_label"]["zh"] == "公用事业"
    damage = next(a for a in manhole["attributes"] if a["code"] == "damage")
    assert damage["required"] is True and [v["key"] for v in damage["values"]] == ["missing", "broken", "displaced"]
    assert manhole["policy"]["time_basis"] == "natural" and manhole["policy"]["yellow_ratio"] == 0.75
    gas = client_for(tree["community"]).get(f"{CATEGORIES}/{cats['0501'].id}").json()
    assert gas["default_priority"] == "urgent" and gas["start_level"] == "street"
    assert gas["policy"]["top_level"] == "city" and set(gas["policy"]["levels"]) == {"street", "district", "city"}


def test_every_role_reads_categories(http, client_for):
    tree = build_tree()
    cats = standard_categories()
    for role in ROLES:
        client = client_for(tree[role])
        assert client.get(CATEGORIES, params={"page_size": 1}).json()["total"] == len(SEED), role
        assert client.get(f"{CATEGORIES}/{cats['0601'].id}").status_code == 200, role


def test_anonymous_clients_read_nothing(http):
    _assert_error(http.get(CATEGORIES), 401, "auth.required")


def test_the_list_filters_and_pages(http, client_for):
    tree = build_tree()
    cats = standard_categories()
    reader = client_for(tree["street"])
    assert _codes(reader.get(CATEGORIES, params={"parent_id": cats["06"].id, "page_size": 500})) == [
        row["code"] for row in LEAVES if row["parent_code"] == "06"]
    disputes = _codes(reader.get(CATEGORIES, params={"kind": "dispute", "page_size": 500}))
    assert "06" in disputes and "0601" in disputes and "0101" not in disputes
    leaves = reader.get(CATEGORIES, params={"leaves_only": "true", "page_size": 500}).json()
    assert leaves["total"] == len(LEAVES) and all(c["is_leaf"] for c in leaves["items"])
    internal = _codes(reader.get(CATEGORIES, params={"public": "false", "page_size": 500}))
    assert "0702" in internal and "0101" not in internal
    assert _codes(reader.get(CATEGORIES, params={"q": "井盖"})) == ["0201"]
    assert _codes(reader.get(CATEGORIES, params={"q": "MANHOLE"})) == ["0201"]
    assert _codes(reader.get(CATEGORIES, params={"q": "牛皮癣"})) == ["0105"]  # a keyword
    assert _codes(reader.get(CATEGORIES, params={"q": "0201"})) == ["0201"]
    assert _codes(reader.get(CATEGORIES, params={"q": "%"})) == []
    first = reader.get(CATEGORIES, params={"page": 1, "page_size": 10}).json()
    second = reader.get(CATEGORIES, params={"page": 2, "page_size": 10}).json()
    assert first["total"] == second["total"] == len(SEED)
    assert [c["code"] for c in first["items"] + second["items"]] == [row["code"] for row in SEED[:20]]


@pytest.mark.parametrize("params", [{"colour": "red"}, {"kind": "weather"}, {"parent_id": "x"}, {"q": ""},
                                    {"page_size": 501}, {"leaves_only": "maybe"}])
def test_bad_query_parameters_are_422(http, client_for, params):
    tree = build_tree()
    _assert_error(client_for(tree["admin"]).get(CATEGORIES, params=params), 422, "request.invalid")


def test_an_unknown_category_is_404(http, client_for):
    tree = build_tree()
    _assert_error(client_for(tree["grid_worker"]).get(f"{CATEGORIES}/999999"), 404, "category.not_found")


# --- creating --------------------------------------------------------------------------

def test_an_admin_creates_a_group_and_a_leaf_under_it(http, db, client_for):
    tree = build_tree()
    admin = client_for(tree["admin"])
    group = admin.post(CATEGORIES, json=_group())
    assert group.status_code == 201, group.text
    assert group.json()["is_leaf"] is False and group.json()["version"] == 1
    leaf = admin.post(CATEGORIES, json=_leaf(group.json()["id"]))
    assert leaf.status_code == 201, leaf.text
    body = leaf.json()
    assert body["parent"]["code"] == "99" and body["is_leaf"] is True and body["start_level"] == "grid"
    assert body["public"] is True and body["requires_after_photo"] is True
    assert body["department_kind"] == "urban_management"
    bikes, brand = body["attributes"]
    assert bikes == {"code": "bikes", "datatype": "number", "required": True, "label": "车辆数",
                     "label_en": "Number of bikes", "order": 1, "min": 1, "max": 1000}
    assert brand["required"] is False and brand["order"] == 2
    assert body["policy"]["levels"]["grid"] == {"ack_minutes": 60, "resolve_minutes": 1440}
    assert _count(db) == 2


@pytest.mark.parametrize("role", ["city", "district", "street", "community", "grid_worker", "department"])
def test_only_administrators_create_categories(http, db, client_for, role):
    tree = build_tree()
    _assert_error(client_for(tree[role]).post(CATEGORIES, json=_group()), 403, "auth.forbidden")
    assert _count(db) == 0


def test_a_code_is_taken_once(http, db, client_for):
    tree = build_tree()
    standard_categories()
    before = _count(db)
    response = client_for(tree["admin"]).post(CATEGORIES, json=_group(code="01"))
    _assert_error(response, 409, "category.code_taken")
    assert response.json()["errors"] == {"code": ["Already taken."]}
    assert _count(db) == before


def test_a_leaf_needs_a_live_group_as_parent(http, db, client_for):
    tree = build_tree()
    cats = standard_categories()
    admin = client_for(tree["admin"])
    admin.post(f"{CATEGORIES}/{cats['10'].id}/retire")
    before = _count(db)
    for parent_id in (cats["0101"].id, cats["10"].id, 999999):
        response = admin.post(CATEGORIES, json=_leaf(parent_id))
        _assert_error(response, 422, "category.invalid_parent")
        assert list(response.json()["errors"]) == ["parent_id"]
    assert _count(db) == before


@pytest.mark.parametrize("attributes, fragment", [
    ([{"code": "n", "datatype": "number", "label": "数", "label_en": "N"},
      {"code": "n", "datatype": "string", "label": "串", "label_en": "S"}], "the code is repeated"),
    ([{"code": "kind", "datatype": "singlevaluelist", "label": "类", "label_en": "Kind"}], "values must be"),
    ([{"code": "n", "datatype": "string", "label": "数", "label_en": "N",
       "values": [{"key": "a", "name": "甲", "name_en": "A"}]}], "values are only for"),
    ([{"code": "n", "datatype": "number", "label": "数", "label_en": "N", "min": 5, "max": 1}], "min is greater"),
    ([{"code": "Bad Code", "datatype": "number", "label": "数", "label_en": "N"}], "code must be"),
])
def test_bad_attribute_definitions_are_422_with_field_errors(http, db, client_for, attributes, fragment):
    tree = build_tree()
    before = _count(db)
    response = client_for(tree["admin"]).post(CATEGORIES, json=_group(attributes=attributes))
    _assert_error(response, 422, "category.invalid_attributes")
    assert any(fragment in message for message in response.json()["errors"]["attributes"]), response.text
    assert _count(db) == before


@pytest.mark.parametrize("policy, start_level, fragment", [
    ({"top_level": "street"}, "district", "below the start level"),
    ({}, "city", "below the start level"),
    ({"top_level": "city", "levels": {"street": {"ack_minutes": 15, "resolve_minutes": 240}}}, "street",
     "missing: city, district"),
    ({"levels": {"grid": {"ack_minutes": 60, "resolve_minutes": 30}}}, "district", "must be greater than"),
    ({"yellow_ratio": 1.5}, "grid", "yellow_ratio"),
])
def test_bad_policies_are_422_with_field_errors(http, db, client_for, policy, start_level, fragment):
    tree = build_tree()
    response = client_for(tree["admin"]).post(CATEGORIES, json=_group(policy=policy, start_level=start_level))
    _assert_error(response, 422, "category.invalid_policy")
    assert any(fragment in message for message in response.json()["errors"]["policy"]), response.text
    assert _count(db) == 0


@pytest.mark.parametrize("change", [
    {"code": "has space"}, {"code": ""}, {"name": "  "}, {"name_en": None}, {"kind": "weather"},
    {"default_priority": "asap"}, {"start_level": "planet"}, {"department_kind": "army"}, {"keywords": "垃圾"},
    {"attributes": [{"code": "n", "datatype": "colour", "label": "色", "label_en": "Colour"}]},
    {"attributes": [{"code": "n", "datatype": "number", "label": "数", "label_en": "N", "min": "1"}]},
    {"policy": {"levels": {"moon": {"ack_minutes": 1, "resolve_minutes": 2}}}},
    {"policy": {"levels": {"grid": {"ack_minutes": "1", "resolve_minutes": 2}}}},
    {"policy": {"escalate": True}}, {"parent_id": "1"}, {"retired_at": None}, {"version": 1}, {"extra": True},
])
def test_bad_bodies_are_422_and_write_nothing(http, db, client_for, change):
    tree = build_tree()
    response = client_for(tree["admin"]).post(CATEGORIES, json=_group(**change))
    _assert_error(response, 422, "request.invalid")
    assert _count(db) == 0


# --- changing --------------------------------------------------------------------------

def test_an_admin_changes_a_category_with_the_version_it_read(http, client_for):
    tree = build_tree()
    cats = standard_categories()
    admin = client_for(tree["admin"])
    url = f"{CATEGORIES}/{cats['0601'].id}"
    policy = {"time_basis": "working", "levels": {"grid": {"ack_minutes": 120, "resolve_minutes": 2400},
                                                  "community": {"ack_minutes": 240, "resolve_minutes": 4800},
                                                  "street": {"ack_minutes": 480, "resolve_minutes": 7200},
                                                  "district": {"ack_minutes": 480, "resolve_minutes": 9600}}}
    response = admin.patch(url, json={"name": "邻里矛盾", "keywords": ["邻居", "邻居", "楼上楼下"], "policy": policy,
                                      "version": 1})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["name"] == "邻里矛盾" and body["keywords"] == ["邻居", "楼上楼下"] and body["version"] == 2
    assert body["policy"] == {**policy, "yellow_ratio": 0.75, "top_level": "district", "department_from": None,
                              "auto_dispatch": False}
    assert body["code"] == "0601" and body["name_en"] == "Dispute between neighbours"
    stale = admin.patch(url, json={"name": "又改了", "version": 1})
    _assert_error(stale, 409, "category.version_conflict")
    assert admin.get(url).json()["name"] == "邻里矛盾"


def test_code_and_parent_never_change_and_a_version_is_required(http, client_for):
    tree = build_tree()
    cats = standard_categories()
    admin = client_for(tree["admin"])
    url = f"{CATEGORIES}/{cats['0601'].id}"
    _assert_error(admin.patch(url, json={"name": "X"}), 422, "request.invalid")
    _assert_error(admin.patch(url, json={"code": "0699", "version": 1}), 422, "request.invalid")
    _assert_error(admin.patch(url, json={"parent_id": cats["01"].id, "version": 1}), 422, "request.invalid")
    assert admin.get(url).json()["version"] == 1


def test_a_change_is_checked_as_a_whole(http, client_for):
    """Raising the start level above the policy's top level breaks the policy."""
    tree = build_tree()
    cats = standard_categories()
    admin = client_for(tree["admin"])
    url = f"{CATEGORIES}/{cats['0601'].id}"
    _assert_error(admin.patch(url, json={"start_level": "city", "version": 1}), 422, "category.invalid_policy")
    response = admin.patch(url, json={"attributes": [{"code": "a", "datatype": "multivaluelist", "label": "甲",
                                                      "label_en": "A"}], "version": 1})
    _assert_error(response, 422, "category.invalid_attributes")
    body = admin.get(url).json()
    assert body["version"] == 1 and body["start_level"] == "grid" and len(body["attributes"]) == 3


@pytest.mark.parametrize("role", ["city", "district", "street", "community", "grid_worker", "department"])
def test_only_administrators_change_or_retire_categories(http, db, client_for, role):
    tree = build_tree()
    cats = standard_categories()
    client = client_for(tree[role])
    url = f"{CATEGORIES}/{cats['0601'].id}"
    _assert_error(client.patch(url, json={"name": "X", "version": 1}), 403, "auth.forbidden")
    _assert_error(client.post(url + "/retire"), 403, "auth.forbidden")
    db.session.expire_all()
    category = db.session.get(Category, cats["0601"].id)
    assert category.name == "邻里纠纷" and category.version == 1 and category.retired_at is None


def test_changing_or_retiring_an_unknown_category_is_404(http, client_for):
    tree = build_tree()
    admin = client_for(tree["admin"])
    _assert_error(admin.patch(f"{CATEGORIES}/999999", json={"name": "X", "version": 1}), 404, "category.not_found")
    _assert_error(admin.post(f"{CATEGORIES}/999999/retire"), 404, "category.not_found")


# --- retiring --------------------------------------------------------------------------

def test_retiring_a_group_retires_its_leaves_and_keeps_them_readable(http, db, client_for):
    tree = build_tree()
    cats = standard_categories()
    admin, worker = client_for(tree["admin"]), client_for(tree["grid_worker"])
    leaves = [row["code"] for row in LEAVES if row["parent_code"] == "06"]
    first = admin.post(f"{CATEGORIES}/{cats['06'].id}/retire")
    assert first.status_code == 200, first.text
    retired_at = first.json()["retired_at"]
    assert retired_at is not None and first.json()["version"] == 2
    assert not set(leaves) & set(_codes(worker.get(CATEGORIES, params={"page_size": 500})))
    everything = worker.get(CATEGORIES, params={"include_retired": "true", "page_size": 500}).json()["items"]
    retired = {c["code"]: c for c in everything if c["code"] in leaves}
    assert set(retired) == set(leaves)
    assert all(c["retired_at"] == retired_at and c["version"] == 2 for c in retired.values())
    leaf = worker.get(f"{CATEGORIES}/{cats['0601'].id}")
    assert leaf.status_code == 200 and leaf.json()["retired_at"] == retired_at
    again = admin.post(f"{CATEGORIES}/{cats['06'].id}/retire")
    assert again.status_code == 200 and again.json()["retired_at"] == retired_at and again.json()["version"] == 2
    assert _count(db) == len(SEED)


def test_retiring_a_leaf_leaves_its_group_alone(http, client_for):
    tree = build_tree()
    cats = standard_categories()
    admin = client_for(tree["admin"])
    assert admin.post(f"{CATEGORIES}/{cats['0601'].id}/retire").json()["retired_at"] is not None
    assert admin.get(f"{CATEGORIES}/{cats['06'].id}").json()["retired_at"] is None
    assert admin.get(f"{CATEGORIES}/{cats['0602'].id}").json()["retired_at"] is None


def test_seeding_again_never_unretires_and_restores_edited_fields(http, db, client_for):
    tree = build_tree()
    cats = standard_categories()
    admin = client_for(tree["admin"])
    admin.post(f"{CATEGORIES}/{cats['0101'].id}/retire")
    admin.patch(f"{CATEGORIES}/{cats['0102'].id}", json={"name": "垃圾渣土", "version": 1})
    report = seed_categories()
    assert (report["created"], report["updated"], report["unchanged"]) == (0, 1, len(SEED) - 1)
    assert admin.get(f"{CATEGORIES}/{cats['0101'].id}").json()["retired_at"] is not None
    assert admin.get(f"{CATEGORIES}/{cats['0102'].id}").json()["name"] == "积存垃圾渣土"


def test_a_bad_seed_file_writes_nothing(http, db, tmp_path):
    from server.errors import InvalidInput

    bad = {"groups": [{**{k: v for k, v in GROUPS[0].items() if k != "sort_order"}, "children": [
        {"code": "0101", "name": "暴露垃圾", "name_en": "Exposed rubbish", "kind": "event",
         "policy": {"top_level": "planet"}}]}]}
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad, ensure_ascii=False))
    with pytest.raises(InvalidInput) as refused:
        seed_categories(path)
    assert refused.value.code == "category.invalid_seed" and list(refused.value.errors) == ["0101"]
    assert _count(db) == 0


def test_the_seed_never_hangs_leaves_under_a_leaf(http, db, client_for):
    from server.errors import InvalidInput

    tree = build_tree()
    admin = client_for(tree["admin"])
    group = admin.post(CATEGORIES, json=_group()).json()
    admin.post(CATEGORIES, json=_leaf(group["id"], code="01"))  # the standard group's code, taken by a leaf
    with pytest.raises(InvalidInput) as refused:
        seed_categories()
    assert refused.value.code == "category.invalid_seed" and list(refused.value.errors) == ["0101"]
    assert _count(db) == 2


def test_the_cli_seeds_and_lists(app, db):
    runner = app.test_cli_runner()
    seeded = runner.invoke(args=["categories", "seed"])
    assert seeded.exit_code == 0, seeded.output
    assert f"{len(GROUPS)} groups, {len(LEAVES)} leaves: {len(SEED)} created, 0 updated, 0 unchanged" in seeded.output
    listed = runner.invoke(args=["categories", "list"])
    assert listed.exit_code == 0 and "0201" in listed.output and "井盖破损" in listed.output
