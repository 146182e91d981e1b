//! Which members of its parameters a function reads, where its source tells.
//!
//! Building a document as a JavaScript object is most of what a call costs,
//! and a `validate_doc_update` such as
//! `function(newDoc) { if (newDoc.type === 'order' && !(newDoc.total > 0)) throw(...) }`
//! looks at two members of a document that has a dozen, some of them arrays
//! of objects. When every use of a parameter in the function's source is a
//! plain member read (`newDoc.type`), an object holding just those members
//! behaves exactly as the whole document would: nothing else of it can be
//! reached. Any other use (passing it on, enumerating it, `newDoc[expr]`,
//! calling a method on it, `arguments`, `eval`, `with`) and the parameter
//! is built whole. The analysis errs only that way: a use it does not
//! recognise counts as "may read anything".
//!
//! Tests of the parameter itself are also fine, as they see only that it is
//! an object (or `null`, for `oldDoc`), which a partial object is too:
//! `if (oldDoc)`, `oldDoc ? a : b`, `!oldDoc`, `typeof oldDoc`,
//! `oldDoc === x`, `oldDoc !== x`, and `oldDoc && x` (an object is truthy,
//! so the value is `x` unless `oldDoc` is `null`). `oldDoc || x` is not: its
//! value is `oldDoc` itself.
//!
//! One thing reaches past a member read: a member the document lacks is
//! looked up on `Object.prototype`, where an accessor could read other
//! members through `this`. So a function that could install one, or run code
//! that could ([`UNSAFE_NAMES`], `x[expr](...)`, `import()`), gets every
//! parameter whole, and [`super::convert::JsBuilder::build_read`] builds
//! the whole document when a member it lacks is a property of
//! `Object.prototype` (one left by an earlier call or a library).

use std::ops::ControlFlow;

use boa_engine::ast::declaration::Binding;
use boa_engine::ast::expression::access::{
    PropertyAccess, PropertyAccessField, SimplePropertyAccess,
};
use boa_engine::ast::expression::operator::binary::{BinaryOp, LogicalOp, RelationalOp};
use boa_engine::ast::expression::operator::unary::UnaryOp;
use boa_engine::ast::expression::operator::{Binary, Conditional, Unary};
use boa_engine::ast::expression::{
    Call, Expression, Identifier, ImportCall, Optional, TaggedTemplate,
};
use boa_engine::ast::function::FormalParameterListFlags;
use boa_engine::ast::scope::Scope;
use boa_engine::ast::statement::{If, Statement, With};
use boa_engine::ast::visitor::{VisitWith, Visitor};
use boa_engine::ast::StatementListItem;
use boa_engine::interner::{Interner, Sym};
use boa_engine::parser::Parser;
use boa_engine::Source;

/// Names whose use could install an accessor on `Object.prototype` (or
/// run code that does), or reach the parameters unseen.
const UNSAFE_NAMES: &[&str] = &[
    "arguments",
    "eval",
    "Function",
    "Reflect",
    "require",
    "constructor",
    "prototype",
    "__proto__",
    "getPrototypeOf",
    "setPrototypeOf",
    "defineProperty",
    "defineProperties",
    "__defineGetter__",
    "__defineSetter__",
];

/// The members a function reads of one parameter, in first-use order, or
/// `None` when it may read anything (the parameter must be built whole).
pub(crate) type ParamReads = Option<Vec<String>>;

/// For each of the first `params` parameters of the function `script`
/// evaluates to (the text [`super::compile::compile_function`] evaluates),
/// what it reads of it. Anything but a plain `function (a, b) { ... }`
/// expression gives `None` for every parameter.
pub(crate) fn parameter_reads(script: &str, params: usize) -> Vec<ParamReads> {
    analyse(script, params).unwrap_or_else(|| vec![None; params])
}

/// What two functions given the same argument read of it, together.
pub(crate) fn union(a: ParamReads, b: ParamReads) -> ParamReads {
    let (mut all, more) = (a?, b?);
    for member in more {
        if !all.contains(&member) {
            all.push(member);
        }
    }
    Some(all)
}

fn analyse(script: &str, params: usize) -> Option<Vec<ParamReads>> {
    let mut interner = Interner::default();
    let parsed = Parser::new(Source::from_bytes(script))
        .parse_script(&Scope::new_global(), &mut interner)
        .ok()?;
    let [StatementListItem::Statement(statement)] = parsed.statements().statements() else {
        return None;
    };
    let Statement::Expression(expression) = statement.as_ref() else {
        return None;
    };
    let mut expression = expression;
    while let Expression::Parenthesized(inner) = expression {
        expression = inner.expression();
    }
    let Expression::FunctionExpression(function) = expression else {
        return None;
    };
    let list = function.parameters();
    // Defaults, patterns, rest parameters and duplicates: not worth telling apart.
    if !list.flags().contains(FormalParameterListFlags::IS_SIMPLE)
        || list
            .flags()
            .contains(FormalParameterListFlags::HAS_DUPLICATES)
    {
        return None;
    }
    let names = list
        .as_ref()
        .iter()
        .take(params)
        .map(|p| match p.variable().binding() {
            Binding::Identifier(id) => Some(id.sym()),
            Binding::Pattern(_) => None,
        })
        .collect::<Option<Vec<Sym>>>()?;
    let mut reads = Reads {
        interner: &interner,
        names,
        members: vec![Some(Vec::new()); params],
    };
    // A function expression's own name could alias nothing of the
    // parameters; its body is all that reads them.
    if function.body().visit_with(&mut reads).is_break() {
        return None;
    }
    Some(reads.members)
}

/// The visitor: `members[i]` is what was seen read of parameter `names[i]`
/// (parameters past `names` are missing from the source and never read by
/// name; without `arguments` they cannot be read at all).
struct Reads<'i> {
    interner: &'i Interner,
    names: Vec<Sym>,
    members: Vec<ParamReads>,
}

impl Reads<'_> {
    /// Whether `name` is one of [`UNSAFE_NAMES`].
    fn is_unsafe(&self, name: Sym) -> bool {
        // Identifiers are UTF-8 in the interner unless they hold lone surrogates.
        let name = self.interner.resolve_expect(name).utf8();
        name.is_some_and(|name| UNSAFE_NAMES.contains(&name))
    }

    /// The parameter `expression` reads a member of (`p.name`), if any.
    fn member_of_parameter(&self, expression: &Expression) -> Option<usize> {
        match expression {
            Expression::PropertyAccess(PropertyAccess::Simple(access)) => {
                self.parameter(access.target())
            }
            _ => None,
        }
    }

    /// The parameter `expression` names, if it is a bare parameter name.
    fn parameter(&self, expression: &Expression) -> Option<usize> {
        match expression {
            Expression::Identifier(id) => self.names.iter().position(|&n| n == id.sym()),
            _ => None,
        }
    }
}

impl<'ast> Visitor<'ast> for Reads<'_> {
    /// Breaks on what could reach any parameter unseen.
    type BreakTy = ();

    fn visit_call(&mut self, node: &'ast Call) -> ControlFlow<()> {
        // `doc.method()` runs with `this` bound to the whole parameter.
        if let Some(i) = self.member_of_parameter(node.function()) {
            self.members[i] = None;
        }
        // `x[name](...)` could call anything, `defineProperty` included.
        if let Expression::PropertyAccess(PropertyAccess::Simple(access)) = node.function() {
            if matches!(access.field(), PropertyAccessField::Expr(_)) {
                return ControlFlow::Break(());
            }
        }
        node.visit_with(self)
    }

    fn visit_optional(&mut self, node: &'ast Optional) -> ControlFlow<()> {
        // `doc.method?.()`: a call with `this` bound to the parameter.
        if let Some(i) = self.member_of_parameter(node.target()) {
            self.members[i] = None;
        }
        node.visit_with(self)
    }

    fn visit_tagged_template(&mut self, node: &'ast TaggedTemplate) -> ControlFlow<()> {
        // ``doc.method`...` ``: the same.
        if let Some(i) = self.member_of_parameter(node.tag()) {
            self.members[i] = None;
        }
        node.visit_with(self)
    }

    fn visit_import_call(&mut self, _: &'ast ImportCall) -> ControlFlow<()> {
        ControlFlow::Break(())
    }

    fn visit_simple_property_access(
        &mut self,
        node: &'ast SimplePropertyAccess,
    ) -> ControlFlow<()> {
        if let (Some(i), PropertyAccessField::Const(field)) =
            (self.parameter(node.target()), node.field())
        {
            if self.is_unsafe(field.sym()) {
                return ControlFlow::Break(());
            }
            let name = self.interner.resolve_expect(field.sym()).to_string();
            if let Some(members) = &mut self.members[i] {
                if !members.contains(&name) {
                    members.push(name);
                }
            }
            return ControlFlow::Continue(());
        }
        node.visit_with(self)
    }

    fn visit_if(&mut self, node: &'ast If) -> ControlFlow<()> {
        if self.parameter(node.cond()).is_some() {
            node.body().visit_with(self)?;
            return node
                .else_node()
                .map_or(ControlFlow::Continue(()), |e| e.visit_with(self));
        }
        node.visit_with(self)
    }

    fn visit_conditional(&mut self, node: &'ast Conditional) -> ControlFlow<()> {
        if self.parameter(node.condition()).is_some() {
            node.if_true().visit_with(self)?;
            return node.if_false().visit_with(self);
        }
        node.visit_with(self)
    }

    fn visit_unary(&mut self, node: &'ast Unary) -> ControlFlow<()> {
        if matches!(node.op(), UnaryOp::Not | UnaryOp::TypeOf)
            && self.parameter(node.target()).is_some()
        {
            return ControlFlow::Continue(());
        }
        node.visit_with(self)
    }

    fn visit_binary(&mut self, node: &'ast Binary) -> ControlFlow<()> {
        let (lhs, rhs) = (self.parameter(node.lhs()), self.parameter(node.rhs()));
        match node.op() {
            BinaryOp::Logical(LogicalOp::And) if lhs.is_some() => node.rhs().visit_with(self),
            BinaryOp::Relational(RelationalOp::StrictEqual | RelationalOp::StrictNotEqual) => {
                if lhs.is_none() {
                    node.lhs().visit_with(self)?;
                }
                if rhs.is_none() {
                    node.rhs().visit_with(self)?;
                }
                ControlFlow::Continue(())
            }
            _ => node.visit_with(self),
        }
    }

    fn visit_identifier(&mut self, node: &'ast Identifier) -> ControlFlow<()> {
        // Reached only where an identifier is not the target of a member
        // read above: a bare use of a parameter, a member name (`x.name`,
        // `{name: ...}`), or another name.
        if self.is_unsafe(node.sym()) {
            return ControlFlow::Break(());
        }
        if let Some(i) = self.names.iter().position(|&n| n == node.sym()) {
            self.members[i] = None;
        }
        ControlFlow::Continue(())
    }

    fn visit_with(&mut self, _: &'ast With) -> ControlFlow<()> {
        ControlFlow::Break(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reads(source: &str) -> Vec<ParamReads> {
        parameter_reads(&format!("({source}\n)"), 2)
    }

    fn members(names: &[&str]) -> ParamReads {
        Some(names.iter().map(|n| n.to_string()).collect())
    }

    #[test]
    fn plain_member_reads_are_listed() {
        let vdu = "function(newDoc, oldDoc, userCtx) { if (newDoc.type === 'order' && !(newDoc.total > 0)) throw({forbidden: 'x'}); }";
        assert_eq!(reads(vdu), vec![members(&["type", "total"]), members(&[])]);
        let nested = "function(n, o) { if (o && o.owner !== n.owner) throw 1; var k = n.items.length; n.x = 1; }";
        assert_eq!(
            reads(nested),
            vec![members(&["owner", "items", "x"]), members(&["owner"])]
        );
        // Tests of the parameter itself.
        let tests = "function(n, o) { if (o) { o.a; } if (!o || typeof o !== 'object' || o === n) throw 1; var v = o ? o.b : n.c; }";
        assert_eq!(reads(tests), vec![members(&["c"]), members(&["a", "b"])]);
        // Members read in nested functions count too.
        let inner = "function(n) { [1].forEach(function(x) { if (n.a) throw x; }); }";
        assert_eq!(reads(inner), vec![members(&["a"]), members(&[])]);
        // Missing parameters are never read.
        assert_eq!(reads("function() { }"), vec![members(&[]), members(&[])]);
    }

    #[test]
    fn any_other_use_builds_the_parameter_whole() {
        for source in [
            "function(n, o) { log(n); }",
            "function(n, o) { JSON.stringify(n); }",
            "function(n, o) { for (var k in n) {} }",
            "function(n, o) { return n['type']; }",
            "function(n, o) { n.hasOwnProperty('type'); }",
            "function(n, o) { var d = n; d.type; }",
            "function(n, o) { var {type} = n; }",
            "function(n, o) { return n?.type; }",
            "function(n, o) { [1].map(function(n) { return n; }); }",
            "function(n, o) { var d = n || {}; }",
            "function(n, o) { if (n == 'x') throw 1; }",
            "function(n, o) { return n && n; }",
            "function(n, o) { n.hasOwnProperty?.('type'); }",
            "function(n, o) { n.hasOwnProperty`type`; }",
        ] {
            assert_eq!(reads(source)[0], None, "{source}");
            assert!(reads(source)[1].is_some(), "{source}");
        }
        for source in [
            "function(n, o) { arguments[0].type; }",
            "function(n, o) { eval('n'); }",
            "function(n, o) { with (n) { type; } }",
            "function(n, o) { Object.defineProperty(Object.prototype, 'p', {get: function() { return this.s; }}); n.p; }",
            "function(n, o) { ({}).__proto__.__defineGetter__('p', function() { return this.s; }); n.p; }",
            "function(n, o) { var d = 'define' + 'Property'; Object[d](Object.prototype, 'p', {}); n.p; }",
            "function(n, o) { (function(){}).constructor('return 1')(); n.p; }",
            "function(n, o) { require('views/lib/x'); n.p; }",
            "function(n, o) { Reflect.set({}, 'a', 1); n.p; }",
            "function(n, o) { n.constructor; }",
            "function(n, o) { import('x'); n.p; }",
            "function(n = 1, o) { }",
            "function(n, ...o) { }",
            "function({type}, o) { }",
            "(n, o) => n.type",
            "function(n, o) { }; 1",
            "function(n, o) {",
        ] {
            assert_eq!(parameter_reads(source, 2), vec![None, None], "{source}");
        }
    }
}
