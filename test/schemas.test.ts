/** Serialization schemas as class facts (semantic/schemas.ts): which fields a schema reads from each object. */
import { beforeAll, describe, expect, it } from 'vitest';
import { createParser } from '../dist/src/parse/parser.js';
import { buildFileModel } from '../dist/src/semantic/model.js';
import { schemaFacts } from '../dist/src/semantic/schemas.js';
import type { PythonParser } from '../src/parse/parser.js';

let parser: PythonParser;
beforeAll(async () => {
  parser = (await createParser('wasm')) as PythonParser;
});

function facts(source: string, models: string[] = []) {
  const tree = parser.parse(source);
  const model = buildFileModel('app/schemas.py', source, tree.rootNode, parser);
  model.modelClasses = new Set(models);
  const out = Object.fromEntries(schemaFacts(model));
  tree.release();
  return out;
}

describe('schema facts', () => {
  it('pydantic fields, nested schemas through list/Optional/union, ClassVar and config left out', () => {
    const got = facts([
      'from typing import ClassVar, Optional',
      'from pydantic import BaseModel, ConfigDict',
      'from app.other import TagOut',
      'class AuthorOut(BaseModel):',
      '    model_config = ConfigDict(from_attributes=True)',
      '    kind: ClassVar[str] = "author"',
      '    id: int',
      '    books: list["BookOut"]',
      '    editor: Optional[EditorOut] = None',
      '    tags: list[TagOut] | None = None',
      '    _private: int = 0',
      '',
    ].join('\n'));
    expect(got.AuthorOut).toEqual({
      fields: ['id', 'books', 'editor', 'tags'],
      nested: [['books', 'app.schemas.BookOut'], ['editor', 'app.schemas.EditorOut'], ['tags', 'app.other.TagOut']],
    });
  });

  it('marshmallow: Meta.fields, declared fields, attribute= and nested schemas', () => {
    const got = facts([
      'from marshmallow import Schema, fields',
      'class VisitSchema(Schema):',
      '    class Meta:',
      '        fields = ("id", "vet", "clinic")',
      '    vet = fields.Nested(VetSchema)',
      '    clinic = fields.Str(attribute="vet.clinic")',
      '    owner = fields.Pluck("OwnerSchema", "name", attribute="person")',
      '',
    ].join('\n'));
    expect(got.VisitSchema).toEqual({
      fields: ['id', 'vet', 'clinic', 'owner'],
      reads: [['clinic', 'vet'], ['owner', 'person']],
      nested: [['vet', 'app.schemas.VetSchema'], ['owner', 'app.schemas.OwnerSchema']],
    });
  });

  it('mapped models and SQLModel tables are not schemas; classes in functions are not module classes', () => {
    const got = facts([
      'from sqlmodel import SQLModel, Field',
      'class Hero(SQLModel, table=True):',
      '    id: int = Field(primary_key=True)',
      'class Team(Base):',
      '    name = Column(String)',
      'class HeroOut(SQLModel):',
      '    id: int',
      'def make():',
      '    class Local(BaseModel):',
      '        x: int',
      '    return Local',
      '',
    ].join('\n'), ['Team']);
    expect(Object.keys(got)).toEqual(['HeroOut']);
  });
});
