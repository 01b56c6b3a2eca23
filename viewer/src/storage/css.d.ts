/** Vite bundles a stylesheet imported for its side effect (`import './storage.css'`) with the chunk that imports it. */
declare module '*.css';
