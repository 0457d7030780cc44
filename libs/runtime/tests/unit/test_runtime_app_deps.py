"""Mounted: what an API module's routes work with, put on the app and got back per request."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter, Depends, FastAPI
from fastapi.testclient import TestClient

from accord.runtime.app_deps import Mounted


@dataclass(frozen=True)
class Greeting:
    word: str


greeting = Mounted[Greeting]("test_greeting")
router = APIRouter()
other = APIRouter()


@router.get("/greet/{name}")
async def greet(name: str, deps: Greeting = Depends(greeting)) -> dict[str, str]:
    return {"text": f"{deps.word}, {name}"}


@other.get("/word")
async def word(deps: Greeting = Depends(greeting)) -> str:
    return deps.word


def test_each_app_serves_the_value_mounted_on_it() -> None:
    hello, bonjour = FastAPI(), FastAPI()
    greeting.mount(hello, Greeting("hello"), router)
    greeting.mount(bonjour, Greeting("bonjour"), router, other)

    assert TestClient(hello).get("/greet/ada").json() == {"text": "hello, ada"}
    assert TestClient(bonjour).get("/greet/ada").json() == {"text": "bonjour, ada"}
    assert TestClient(bonjour).get("/word").json() == "bonjour"
    assert TestClient(hello).get("/word").status_code == 404


def test_the_dependency_asks_nothing_of_the_client() -> None:
    app = FastAPI()
    greeting.mount(app, Greeting("hi"), router)

    operation = app.openapi()["paths"]["/greet/{name}"]["get"]
    assert [p["name"] for p in operation["parameters"]] == ["name"]


def test_mount_without_routers_only_puts_the_value_on_the_app() -> None:
    app = FastAPI()
    greeting.mount(app, Greeting("hi"))

    assert app.state.test_greeting == Greeting("hi")
    assert TestClient(app).get("/greet/ada").status_code == 404
