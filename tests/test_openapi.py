from __future__ import annotations

from httpx import AsyncClient


async def test_every_operation_documents_its_problem_responses(client: AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    problem = schema["components"]["schemas"]["Problem"]
    assert problem["required"] == ["type", "title", "status", "detail", "code"]
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            errors = {code: spec for code, spec in responses.items() if code.startswith(("4", "5"))}
            if path.startswith("/auth/"):
                assert {"500", "503"} <= set(errors), (method, path)
            for code, spec in errors.items():
                assert "application/problem+json" in spec["content"], (method, path, code)


async def test_swagger_ui_is_served(client: AsyncClient) -> None:
    response = await client.get("/docs")
    assert response.status_code == 200
    assert "swagger-ui" in response.text
