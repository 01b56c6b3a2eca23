/** Vite bundles a stylesheet imported for its side effect (`import './reports.css'`) with the chunk that imports it. */
declare module '*.css';
