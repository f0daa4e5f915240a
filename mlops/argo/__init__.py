"""The local executor of Argo WorkflowTemplates: strict schema, supported subset, `mlops run`.

Modules: `schema` (strict validation + supported subset), `references` (cross-references),
`expr` (when / retry / depends expressions), `executor` (running a workflow), `process`
(one container as a subprocess), `render` (progress and the final step tree), `lint`, `cli`.
"""
