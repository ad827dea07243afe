//! The hclspec Nomad decodes a dtle task's `config { }` with, generated from the config module's field tables
//! (`TASK_CONFIG_FIELDS` and the nested tables), so every default is written once.
//!
//! - object-valued fields (`SrcConnectionConfig { ... }` or `= { ... }`) are `Block`s: Nomad's HCL-JSON decoding
//!   takes the one-element list that `nomad job run` makes of them as well as a plain JSON object;
//! - lists of objects (`ReplicateDoDb`, `Tables`) are `BlockList`s (absent = empty list, the tables' default);
//! - scalars and `list(string)` are `Attr`s, wrapped in `Default` when the table has a default;
//! - required fields (`Host`, `Port`, ...) are required attributes, as in dtle's spec.

use std::collections::HashMap;

use dtle_proto::nomad::hclspec::{spec, Attr, Block, BlockList, Default, Literal, Object, Spec};

use crate::config::{FieldKind, FieldSpec, TASK_CONFIG_FIELDS};

/// The spec of a dtle task's `config { }` block.
pub fn task_config_spec() -> Spec {
    object_spec(TASK_CONFIG_FIELDS)
}

/// An `Object` spec with one entry per field.
pub fn object_spec(fields: &[FieldSpec]) -> Spec {
    let attributes: HashMap<String, Spec> = fields.iter().map(|f| (f.name.to_string(), field_spec(f))).collect();
    Spec { block: Some(spec::Block::Object(Object { attributes })) }
}

fn field_spec(f: &FieldSpec) -> Spec {
    match f.kind {
        FieldKind::Object(nested) => Spec {
            block: Some(spec::Block::BlockValue(Box::new(Block {
                name: f.name.to_string(),
                required: f.required,
                nested: Some(Box::new(object_spec(nested))),
            }))),
        },
        FieldKind::List(FieldKind::Object(nested)) => Spec {
            block: Some(spec::Block::BlockList(Box::new(BlockList {
                name: f.name.to_string(),
                min_items: u64::from(f.required),
                max_items: 0,
                nested: Some(Box::new(object_spec(nested))),
            }))),
        },
        _ => attr_with_default(f.name, &f.kind.cty_type(), f.required, f.default.hcl_literal()),
    }
}

/// An attribute, wrapped in `Default` when there is a default literal. The attribute always carries its name:
/// Nomad gives no implied name to a `Default`'s primary.
pub fn attr_with_default(name: &str, cty_type: &str, required: bool, default: Option<String>) -> Spec {
    let attr = Spec {
        block: Some(spec::Block::Attr(Attr { name: name.to_string(), r#type: cty_type.to_string(), required })),
    };
    match default {
        None => attr,
        Some(value) => Spec {
            block: Some(spec::Block::Default(Box::new(Default {
                primary: Some(Box::new(attr)),
                default: Some(Box::new(Spec { block: Some(spec::Block::Literal(Literal { value })) })),
            }))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(spec: &Spec) -> &HashMap<String, Spec> {
        match &spec.block {
            Some(spec::Block::Object(o)) => &o.attributes,
            other => panic!("not an object: {other:?}"),
        }
    }

    #[test]
    fn every_field_with_its_default() {
        let spec = task_config_spec();
        let top = attrs(&spec);
        assert_eq!(top.len(), TASK_CONFIG_FIELDS.len());
        match &top["ChunkSize"].block {
            Some(spec::Block::Default(d)) => {
                let lit = d.default.as_ref().and_then(|s| s.block.as_ref());
                assert!(matches!(lit, Some(spec::Block::Literal(l)) if l.value == "2000"));
            }
            other => panic!("{other:?}"),
        }
        match &top["SrcConnectionConfig"].block {
            Some(spec::Block::BlockValue(b)) => {
                let nested = attrs(b.nested.as_deref().unwrap());
                assert!(
                    matches!(&nested["Host"].block, Some(spec::Block::Attr(a)) if a.required && a.r#type == "string")
                );
                assert!(matches!(&nested["Charset"].block, Some(spec::Block::Default(_))));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(&top["ReplicateDoDb"].block, Some(spec::Block::BlockList(_))));
        assert!(matches!(&top["SqlFilter"].block, Some(spec::Block::Default(_))));
        assert!(matches!(&top["DestType"].block, Some(spec::Block::Attr(a)) if !a.required));
    }
}
