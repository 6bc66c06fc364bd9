"""Our own tag queries, one per language, written for the grammar wheels pinned in pyproject.toml.

Capture names: `def.<kind>` on the name node of a definition, `ref` on an identifier used as a
reference, `scope` on a node whose header line is worth showing above the definitions inside it
(classes, functions, impl blocks, namespaces). The grammars' own tags.scm files differ in shape and
coverage (the C and C++ ones capture no references at all), so one consistent set is kept here.
"""

from __future__ import annotations

PYTHON = """
(class_definition name: (identifier) @def.class) @scope
(function_definition name: (identifier) @def.function) @scope
(module (expression_statement (assignment left: (identifier) @def.constant)))
(class_definition body: (block (expression_statement (assignment left: (identifier) @def.field))))
(call function: (identifier) @ref)
(attribute attribute: (identifier) @ref)
(argument_list (identifier) @ref)
(argument_list (keyword_argument value: (identifier) @ref))
(type (identifier) @ref)
(decorator (identifier) @ref)
(import_from_statement name: (dotted_name (identifier) @ref))
(aliased_import name: (dotted_name (identifier) @ref))
(assignment right: (identifier) @ref)
(return_statement (identifier) @ref)
"""

_JS_COMMON = """
(function_declaration name: (identifier) @def.function) @scope
(generator_function_declaration name: (identifier) @def.function) @scope
(method_definition name: (property_identifier) @def.method) @scope
(variable_declarator name: (identifier) @def.function value: [(arrow_function) (function_expression)]) @scope
(program (lexical_declaration (variable_declarator name: (identifier) @def.constant)))
(program (export_statement (lexical_declaration (variable_declarator name: (identifier) @def.constant))))
(assignment_expression left: (member_expression property: (property_identifier) @def.method)
  right: [(function_expression) (arrow_function)]) @scope
(pair key: (property_identifier) @def.method value: [(function_expression) (arrow_function)]) @scope
(call_expression function: (identifier) @ref)
(member_expression property: (property_identifier) @ref)
(new_expression constructor: (identifier) @ref)
(arguments (identifier) @ref)
(import_specifier name: (identifier) @ref)
"""

JAVASCRIPT = _JS_COMMON + """
(class_declaration name: (identifier) @def.class) @scope
(class_heritage (identifier) @ref)
(jsx_opening_element name: (identifier) @ref)
(jsx_self_closing_element name: (identifier) @ref)
"""

_TS_EXTRA = """
(class_declaration name: (type_identifier) @def.class) @scope
(abstract_class_declaration name: (type_identifier) @def.class) @scope
(interface_declaration name: (type_identifier) @def.interface) @scope
(type_alias_declaration name: (type_identifier) @def.type)
(enum_declaration name: (identifier) @def.enum) @scope
(function_signature name: (identifier) @def.function)
(method_signature name: (property_identifier) @def.method)
(abstract_method_signature name: (property_identifier) @def.method)
(internal_module name: (identifier) @def.module) @scope
(extends_clause value: (identifier) @ref)
(type_identifier) @ref
"""

TYPESCRIPT = _JS_COMMON + _TS_EXTRA
TSX = TYPESCRIPT + """
(jsx_opening_element name: (identifier) @ref)
(jsx_self_closing_element name: (identifier) @ref)
"""

GO = """
(function_declaration name: (identifier) @def.function) @scope
(method_declaration name: (field_identifier) @def.method) @scope
(type_spec name: (type_identifier) @def.type) @scope
(method_elem name: (field_identifier) @def.method)
(source_file (const_declaration (const_spec name: (identifier) @def.constant)))
(source_file (var_declaration (var_spec name: (identifier) @def.variable)))
(call_expression function: (identifier) @ref)
(selector_expression field: (field_identifier) @ref)
(type_identifier) @ref
(composite_literal type: (qualified_type name: (type_identifier) @ref))
"""

RUST = """
(function_item name: (identifier) @def.function) @scope
(function_signature_item name: (identifier) @def.function)
(struct_item name: (type_identifier) @def.struct) @scope
(enum_item name: (type_identifier) @def.enum) @scope
(union_item name: (type_identifier) @def.union) @scope
(trait_item name: (type_identifier) @def.trait) @scope
(type_item name: (type_identifier) @def.type)
(mod_item name: (identifier) @def.module) @scope
(macro_definition name: (identifier) @def.macro)
(const_item name: (identifier) @def.constant)
(static_item name: (identifier) @def.constant)
(impl_item) @scope
(call_expression function: (identifier) @ref)
(call_expression function: (scoped_identifier name: (identifier) @ref))
(field_expression field: (field_identifier) @ref)
(macro_invocation macro: (identifier) @ref)
(scoped_identifier name: (identifier) @ref)
(type_identifier) @ref
"""

JAVA = """
(class_declaration name: (identifier) @def.class) @scope
(interface_declaration name: (identifier) @def.interface) @scope
(enum_declaration name: (identifier) @def.enum) @scope
(record_declaration name: (identifier) @def.class) @scope
(annotation_type_declaration name: (identifier) @def.interface) @scope
(method_declaration name: (identifier) @def.method) @scope
(constructor_declaration name: (identifier) @def.method) @scope
(field_declaration declarator: (variable_declarator name: (identifier) @def.field))
(method_invocation name: (identifier) @ref)
(object_creation_expression type: (type_identifier) @ref)
(field_access field: (identifier) @ref)
(type_identifier) @ref
"""

_C_COMMON = """
(function_definition) @scope
(function_declarator declarator: (identifier) @def.function)
(struct_specifier name: (type_identifier) @def.struct body: (_)) @scope
(union_specifier name: (type_identifier) @def.union body: (_)) @scope
(enum_specifier name: (type_identifier) @def.enum body: (_)) @scope
(type_definition declarator: (type_identifier) @def.type)
(preproc_def name: (identifier) @def.macro)
(preproc_function_def name: (identifier) @def.macro)
(call_expression function: (identifier) @ref)
(field_expression field: (field_identifier) @ref)
(type_identifier) @ref
"""

C = _C_COMMON

CPP = _C_COMMON + """
(function_declarator declarator: (field_identifier) @def.method)
(function_declarator declarator: (qualified_identifier name: (identifier) @def.method))
(class_specifier name: (type_identifier) @def.class body: (_)) @scope
(namespace_definition name: (namespace_identifier) @def.namespace) @scope
(alias_declaration name: (type_identifier) @def.type)
(qualified_identifier name: (identifier) @ref)
(namespace_identifier) @ref
"""

QUERIES: dict[str, str] = {
    "python": PYTHON, "javascript": JAVASCRIPT, "typescript": TYPESCRIPT, "tsx": TSX, "go": GO,
    "rust": RUST, "java": JAVA, "c": C, "cpp": CPP,
}
