"""The local executor of Argo WorkflowTemplates: strict schema, supported subset, `mlops run`.

Modules: `schema` (strict validation + supported subset), `references` (cross-references),
`expr` (when / retry / depends expressions), `exprtag` (`{{=...}}` tags, sprig), `executor`
(running a workflow), `control` (`mlops resume` / `mlops stop` of a running run), `process`
(one container as a subprocess), `render` (progress and the final step tree), `lint`, `cli`.
"""
