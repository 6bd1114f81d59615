/**
 * htm bound to Preact: tagged templates instead of JSX, no compile step of our own.
 * Children and attribute values are set as text and DOM properties, never parsed as
 * HTML, so text from the API is shown as it is.
 */
import htm from 'htm';
import { h, type VNode } from 'preact';

export const html = htm.bind(h) as unknown as (strings: TemplateStringsArray, ...values: unknown[]) => VNode;
