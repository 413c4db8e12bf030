"""Names that a framework uses by its own convention, where vulture cannot see the use
(read by tests/parity/test_dead_code.py, never imported).

Code that nothing uses is deleted, not listed here. Names the product spells as
strings (settings' dotted paths, `fields`, `list_display`, templates' lookups) need
no entry: the test reads those from the sources.
"""

# Django: a model's Meta options, an app's AppConfig (found by subclassing), URL namespaces.
abstract, constraints, ordering, verbose_name, verbose_name_plural
AnalysisConfig, AnnotateConfig, DemoConfig, GenerationConfig, ParityConfig, WorkspacesConfig
# A member of TextChoices is one of the field's choices even where no code names it.
VIEWER
app_name

# Django admin: a ModelAdmin's options, hooks and assets.
autocomplete_fields, date_hierarchy, fieldsets, filter_horizontal, inlines, list_display, list_filter
list_select_related, prepopulated_fields, raw_id_fields, readonly_fields, search_fields
get_readonly_fields, has_add_permission, has_change_permission, has_delete_permission
Media

# Django: a command's hooks, a form's clean_<field>, a query expression's options and
# per-vendor SQL, a system check's arguments, state set on a model or a session.
Command, add_arguments
clean_names, clean_anchor_generators, validate_where
# Choices named only by their value ("equal") in settings and requests.
EQUAL
arity, output_field, as_postgresql, as_sqlite
app_configs
adding, _session_key

# Django REST framework: a view's options and hooks, its negotiation, permissions,
# authentication, throttling, pagination, serializers' hooks, exceptions' defaults,
# a request's upload handlers.
content_negotiation_class, pagination_class, parser_classes, renderer_classes, serializer_class
lookup_field, lookup_value_regex
# A viewset's extra actions, routed by their @action decorator.
add_generators, remove_generator
get_permissions, get_serializer_class, partial_update, perform_create, perform_destroy, perform_update
select_parser, select_renderer, format_suffix
has_object_permission, has_permission, authenticate_header
get_cache_key, get_rate, parse_rate
max_page_size, page_size_query_param
default_error_messages, extra_kwargs, read_only_fields, to_representation, validators
validate, validate_backend_config, validate_generator, validate_metrics, validate_presentation_policy
validate_by, validate_settings
get_links, get_trials  # SerializerMethodField: get_<field>
default_code, default_detail
upload_handlers

# drf-spectacular: an authentication extension (found by subclassing) and a
# postprocessing hook's keyword arguments.
BearerTokenScheme, target_class, get_security_definition, auto_schema
public

# Python and PyTorch: a module's __getattr__ and __dir__ (PEP 562), a network's
# forward, tarfile's hook for a subclass, socketserver's, http.server's and
# HTMLParser's hooks, a TarInfo's fields.
__getattr__, __dir__
forward
_proc_gnusparse_10, pax_headers
disable_nagle_algorithm, log_message
handle_data, handle_endtag, handle_starttag
mtime

# The project's own dispatch by a name it builds: the demo command's
# `getattr(self, f"_{stage}_incomplete")`.
_corpus_incomplete, _judgments_incomplete, _ladder_incomplete, _study_incomplete

# Fields of the result objects of `analysis.stats` (in its __all__): its public
# interface, as a statsmodels result's attributes are, read through
# `dataclasses.asdict` by the JSON report or by a notebook.
kendall_p
annotator_left, annotator_p
choice_change, left_early, left_late
conditional_rate
annotator_effect, item_effect
